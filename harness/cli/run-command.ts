// rdma-failover run: the certification suites on a lab (the VM lab by default), with reports.
import type { Command } from '@commander-js/extra-typings';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PROJECT_ROOT } from '../vmlab/paths.ts';
import { DEFAULT_TOPOLOGY, loadOrExit } from './open-lab.ts';
import { parseKernelOption } from './lab-commands.ts';

export function suiteFiles(names: readonly string[]): string[] {
  const dir = join(PROJECT_ROOT, 'suites');
  const all = readdirSync(dir).filter((f) => f.endsWith('.spec.ts')).sort();
  if (!names.length) return all.map((f) => join(dir, f));
  return names.map((n) => {
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
  const args = [join(PROJECT_ROOT, 'node_modules/mocha/bin/mocha.js'), '--config', join(PROJECT_ROOT, '.mocharc.json'), ...(o.grep ? ['--grep', o.grep] : []), ...files];
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    RDMA_FAILOVER_TOPOLOGY: resolve(o.topology),
    ...(o.quick ? { RDMA_FAILOVER_TAGS: 'quick' } : {}),
    ...(o.kernel ? { RDMA_FAILOVER_KERNEL: o.kernel } : {}),
    ...(o.reportsDir ? { RDMA_FAILOVER_REPORTS: resolve(o.reportsDir) } : {}),
    RDMA_FAILOVER_RUNNER_PID: String(process.pid),
    ...o.env,
  };
  return new Promise((res) => {
    const child = spawn(process.execPath, args, { cwd: PROJECT_ROOT, env, stdio: 'inherit', detached: true });
    const forward = (sig: NodeJS.Signals) => {
      // the whole group: mocha runs the suites in a child of its own (node options)
      try {
        if (child.pid) process.kill(-child.pid, sig);
      } catch {
        // already gone
      }
    };
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    child.on('exit', (code) => {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      res(code ?? 1);
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
    .action(async (suites, opts) => {
      loadOrExit(opts.topology);
      if (opts.kernel) parseKernelOption(opts.kernel);
      process.exitCode = await runSuites({
        topology: opts.topology,
        suites,
        ...(opts.quick ? { quick: true } : {}),
        ...(opts.grep ? { grep: opts.grep } : {}),
        ...(opts.kernel ? { kernel: opts.kernel } : {}),
        ...(opts.reports ? { reportsDir: opts.reports } : {}),
      });
    });
}
