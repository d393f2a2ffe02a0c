// argv → one POSIX shell word string. SSH executes a command line through the user's shell, so
// every argument is single-quoted; a topology value can never become shell syntax.

const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

export function quoteArg(arg: string): string {
  if (arg.includes('\0')) throw new Error('an argument cannot contain a NUL byte');
  if (arg !== '' && SAFE.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function quoteArgv(argv: readonly string[]): string {
  if (argv.length === 0) throw new Error('empty argv');
  return argv.map(quoteArg).join(' ');
}

/** Render argv for humans (logs, reports): quoted the same way, so it can be pasted into a shell. */
export function showArgv(argv: readonly string[]): string {
  return argv.map(quoteArg).join(' ');
}
