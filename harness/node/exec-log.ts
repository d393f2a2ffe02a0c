// RDMA_FAILOVER_EXEC_LOG=FILE: one line per remote command (node, what, start, duration, exit), to
// count round trips per test (bench). What a command is: its program and first word when that is a
// subcommand or flag, or for `sh -c SCRIPT NAME …` (or bash) the script's name — never its values (a topology's
// or a user's: addresses, names, paths).
import { appendFileSync } from 'node:fs';
import type { ExecResult } from './node.ts';
import { now } from '../clock.ts';

export const EXEC_LOG = process.env.RDMA_FAILOVER_EXEC_LOG;

export function execWhat(argv: readonly string[]): string {
  const [prog = '', first = '', , name = ''] = argv;
  if ((prog === 'sh' || prog === 'bash') && first === '-c') return `${prog}:${/^[\w-]+$/.test(name) ? name : '?'}`;
  return /^-?[a-z][\w-]*$/.test(first) ? `${prog} ${first}` : prog;
}

export function noteExec(file: string, node: string, argv: readonly string[], p: Promise<ExecResult>): void {
  const t0 = now();
  const write = (end: string) => {
    try {
      appendFileSync(file, `${t0.toFixed(1)}\t${(now() - t0).toFixed(1)}\t${node}\t${execWhat(argv)}\t${end}\n`);
    } catch {
      // a log for measuring: never a reason to fail a command
    }
  };
  p.then(
    (r) => write(String(r.exitCode)),
    () => write('error'),
  );
}
