// Runs mocha's CLI in this very process. Its bin/mocha.js would fork a second node for the
// .mocharc's node options and, on SIGINT, send that child SIGINT and SIGTERM back to back: which of
// the two the suites' stop handler saw first was a race (measured: a Ctrl-C reported as "SIGTERM").
// The runner starts this file with the node options itself, so one signal reaches the suites once.
const entry: string = 'mocha/lib/cli/cli.js'; // untyped: imported by name, typed below
const cli = (await import(entry)) as { main: (argv: string[]) => void };
cli.main(process.argv.slice(2));
