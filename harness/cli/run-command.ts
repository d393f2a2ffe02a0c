// rdma-failover run: the certification suites on a lab (the VM lab by default), with reports.
import type { Command } from '@commander-js/extra-typings';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PROJECT_ROOT } from '../vmlab/paths.ts';
import { DEFAULT_TOPOLOGY, loadOrExit } from './open-lab.ts';
import { parseKernelOption } from './lab-commands.ts';
import { knownIssues } from '../known/known-issues.ts';
import { journalDir } from '../journal.ts';
import { shardFrom, type Shard } from '../run/shard.ts';
import { rerunSelection } from '../run/rerun.ts';
import { readReport, writeReports } from '../report/write.ts';
import { mergeReports } from '../report/merge.ts';
import { combinedExit, labCopies } from '../run/labs.ts';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';

export function suiteFiles(names: readonly string[]): string[] {
  const dir = join(PROJECT_ROOT, 'suites');
  const all = readdirSync(dir).filter((f) => f.endsWith('.spec.ts')).sort();
  if (!names.length) return all.map((f) => join(dir, f));
  return names.map((n) => {
    // A lab's own suite file (or a fixture) by its path.
    if (/\.[cm]?[jt]s$/.test(n) && existsSync(resolve(n))) return resolve(n);
    const hit = all.find((f) => f === n || f === `${n}.spec.ts` || f.startsWith(`${n}.`));
    if (!hit) throw new Error(`no suite "${n}" (suites: ${all.map((f) => f.replace(/\.spec\.ts$/, '')).join(', ')})`);
    return join(dir, hit);
  });
}

export interface RunOptions {
  topology: string;
  suites: string[];
  quick?: boolean;
  grep?: string;
  kernel?: string;
  reportsDir?: string;
  /** run each selected test this many times (pass rate, outage distribution, unstable flag) */
  repeat?: number;
  /** a lab's own known-issues files, beside the shipped known-issues.yaml */
  knownIssues?: string[];
  /** this run's shard of the selected tests */
  shard?: Shard;
  env?: Record<string, string>;
}

/**
 * Runs mocha on the suites in a child process (its own lab session); resolves with its exit code.
 * The child has a process group of its own: a terminal's Ctrl-C reaches this process only, and is
 * forwarded once (the child stops in order: faults healed, report written, lab restored). If this
 * process dies, the child notices (RDMA_FAILOVER_RUNNER_PID) and stops the same way.
 */
export function runSuites(o: RunOptions): Promise<number> {
  const files = suiteFiles(o.suites);
  // mocha in one process (see mocha-main.ts): the node options of .mocharc.json given here
  const args = ['--import=tsx', join(PROJECT_ROOT, 'harness/cli/mocha-main.ts'), '--config', join(PROJECT_ROOT, '.mocharc.json'), ...(o.grep ? ['--grep', o.grep] : []), ...files];
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    RDMA_FAILOVER_TOPOLOGY: resolve(o.topology),
    ...(o.quick ? { RDMA_FAILOVER_TAGS: 'quick' } : {}),
    ...(o.kernel ? { RDMA_FAILOVER_KERNEL: o.kernel } : {}),
    ...(o.reportsDir ? { RDMA_FAILOVER_REPORTS: resolve(o.reportsDir) } : {}),
    RDMA_FAILOVER_RUNNER_PID: String(process.pid),
    // the exit status of a certification run (see mocha-reporter.ts): 0, 3 known only, 1 news
    RDMA_FAILOVER_RUN: '1',
    ...(o.repeat && o.repeat > 1 ? { RDMA_FAILOVER_REPEAT: String(o.repeat) } : {}),
    ...(o.knownIssues?.length ? { RDMA_FAILOVER_KNOWN_ISSUES: o.knownIssues.map((f) => resolve(f)).join(':') } : {}),
    ...(o.shard ? { RDMA_FAILOVER_SHARD: `${o.shard.index}/${o.shard.total}` } : {}),
    ...o.env,
  };
  return new Promise((res) => {
    let signalled: NodeJS.Signals | undefined;
    const forward = (sig: NodeJS.Signals) => {
      signalled ??= sig;
      // the whole group: the suites and anything they started in it
      try {
        if (child.pid) process.kill(-child.pid, sig);
      } catch {
        // already gone
      }
    };
    // Before the spawn: a Ctrl-C between the fork and the handler would kill this process by
    // default and leave the suites running alone (measured: 3 of 20 stops at the first child).
    // (A signal's handler runs from the event loop, after `child` below is set.)
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    const child = spawn(process.execPath, args, { cwd: PROJECT_ROOT, env, stdio: 'inherit', detached: true });
    child.on('exit', (code, signal) => {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      // An interrupted run is never a success: a Ctrl-C that lands before the suites have their
      // stop handler kills them outright, and mocha's wrapper then exits 0 (measured: Ctrl-C 1 s
      // after start → exit 0, no output). The suites' orderly stop exits 130 and says so itself.
      // A stop signal that killed the suites before this process ran its handler is the same stop:
      // a group SIGINT also reaches a suites process forked a moment ago (it leaves this group at
      // setsid, after the fork), and its death can be read before this process's own SIGINT.
      const stop = signalled ?? (signal === 'SIGINT' || signal === 'SIGTERM' ? signal : undefined);
      if (stop && code !== 130) {
        process.stderr.write(`\n${stop}: the suites ended (${code === null ? `killed by ${signal}` : `exit ${code}`}) before an orderly stop; the next run replays the restore journals in ${journalDir()}\n`);
        res(130);
        return;
      }
      if (code === null) {
        // Never a silent failure: the one that ended the suites is named.
        process.stderr.write(`\nthe suites process was killed by ${signal}; the next run replays the restore journals in ${journalDir()}\n`);
        res(1);
        return;
      }
      res(code);
    });
  });
}

export function registerRunCommand(program: Command): void {
  program
    .command('run')
    .description('run the certification suites (all by default) on a lab and write reports/<run-id>/')
    .argument('[suites...]', `suites to run (${existsSync(join(PROJECT_ROOT, 'suites')) ? suiteFiles([]).map((f) => f.split('/').pop()!.replace(/\.spec\.ts$/, '')).join(', ') : ''})`)
    .option('-t, --topology <file>', 'topology', DEFAULT_TOPOLOGY)
    .option('--quick', 'only the quick subset (one failover per ULP)')
    .option('--grep <pattern>', 'only tests whose title matches (e.g. a test plan ID)')
    .option('--kernel <kernel>', 'VM lab guest kernel: debian-stable | debian-backports | IMAGE:MODULES_DIR')
    .option('--reports <dir>', 'where run folders go (default: reports/)')
    .option('--repeat <n>', 'run each selected test N times: pass rate, outage distribution, unstable tests flagged', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new Error(`--repeat takes a whole number ≥ 1 (got "${v}")`);
      return n;
    })
    .option('--known-issues <files...>', "the lab's own known-issues files (beside the shipped known-issues.yaml)")
    .option('--shard <i/n>', 'run shard i of n of the selected tests (stable: by test; default from CI_NODE_INDEX/CI_NODE_TOTAL)')
    .option('--rerun-failed <run-dir>', 'run only the tests that failed (or left a node dead) in that run')
    .option('--labs <n>', 'boot N independent VM labs and spread the tests over them (one merged report)', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 8) throw new Error(`--labs takes 1 to 8 (got "${v}")`);
      return n;
    })
    .addHelpText(
      'after',
      '\nExit status: 0 every test passed (skips allowed); 3 the only failures are known issues;\n1 a new failure, an unstable repeated test, or a lab left changed; 130 interrupted.',
    )
    .action(async (suites, opts) => {
      loadOrExit(opts.topology);
      if (opts.kernel) parseKernelOption(opts.kernel);
      knownIssues(opts.knownIssues ?? []); // an invalid file stops here, with file:line:col
      const shard = shardFrom(opts.shard);
      let grep = opts.grep;
      if (opts.rerunFailed) {
        const again = rerunSelection(readReport(opts.rerunFailed));
        if (!again.titles.length) {
          process.stdout.write(`nothing to rerun: no test failed in ${opts.rerunFailed}\n`);
          return;
        }
        process.stdout.write(`rerunning ${again.titles.length} test(s) that failed in ${opts.rerunFailed}:\n  ${again.titles.join('\n  ')}\n`);
        grep = again.grep;
        if (!suites.length) suites = again.files;
      }
      if (opts.labs && opts.labs > 1) {
        process.exitCode = await runOnLabs(opts.labs, {
          topology: opts.topology,
          suites,
          ...(opts.quick ? { quick: true } : {}),
          ...(grep ? { grep } : {}),
          ...(opts.kernel ? { kernel: opts.kernel } : {}),
          ...(opts.knownIssues ? { knownIssues: opts.knownIssues } : {}),
        }, opts.reports);
        return;
      }
      process.exitCode = await runSuites({
        topology: opts.topology,
        suites,
        ...(opts.quick ? { quick: true } : {}),
        ...(grep ? { grep } : {}),
        ...(shard ? { shard } : {}),
        ...(opts.kernel ? { kernel: opts.kernel } : {}),
        ...(opts.reports ? { reportsDir: opts.reports } : {}),
        ...(opts.repeat ? { repeat: opts.repeat } : {}),
        ...(opts.knownIssues ? { knownIssues: opts.knownIssues } : {}),
      });
    });
}

/** N labs, one shard each, in parallel; then one merged report (reports/<merged id>/). */
async function runOnLabs(n: number, o: Omit<RunOptions, 'shard' | 'reportsDir'>, reportsDir?: string): Promise<number> {
  // The file the user gave, read before the copies are made: the run's topology is what ran, even
  // if the file is edited while the labs run.
  const given = loadOrExit(o.topology);
  const files = labCopies(o.topology, n);
  const dirs = files.map(() => mkdtempSync(join(tmpdir(), 'rf-lab-run-')));
  process.stdout.write(`${n} VM labs: ${files.map((f) => loadOrExit(f).topology.name).join(', ')} — one shard of the tests each\n`);
  const codes = await Promise.all(files.map((f, i) => runSuites({ ...o, topology: f, shard: { index: i + 1, total: n }, reportsDir: dirs[i]! })));
  const runs = dirs.flatMap((d) => readdirSync(d).filter((x) => x !== 'latest' && existsSync(join(d, x, 'report.json'))).map((x) => join(d, x)));
  if (!runs.length) {
    process.stderr.write('no lab produced a report\n');
    return 1;
  }
  // The labs are one topology under N names: the same lab, as far as comparing verdicts goes.
  const merged = mergeReports(runs.map((r) => readReport(r)), { force: true, command: `rdma-failover run --labs ${n}` });
  // ...and the run's topology is the file the user gave, not the first copy's temporary one.
  if (merged.run.topology) merged.run.topology = { ...merged.run.topology, file: given.file, name: given.topology.name, sha256: given.sha256 };
  const w = await writeReports(merged, { ...(reportsDir ? { dir: join(reportsDir, merged.run.id) } : {}), pdf: process.env.RDMA_FAILOVER_PDF !== '0' });
  process.stdout.write(`merged report of ${runs.length} lab run(s): ${w.dir} — ${merged.summary.passed} passed, ${merged.summary.failed} failed, ${merged.summary.knownFailures} known, ${merged.summary.skipped} skipped\n`);
  return combinedExit(codes);
}
