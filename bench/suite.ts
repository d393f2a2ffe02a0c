// Benchmark: where a certification run's time goes. Runs the quick subset on the embedded lab
// (or reads a finished run's report.json) and prints, per test: wall time, time inside the test's
// own steps, the harness's overhead (wall time outside any step, as a share of the wall time) and
// the verify step; then the total line.
//
//   npm run bench:suite                      # rdma-failover run --quick, then the table
//   npm run bench:suite -- --report DIR      # the table for an existing run (reports/<id>)
//   npm run bench:suite -- -- --grep UL-RDS  # extra arguments for `rdma-failover run`
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { RunReport } from '../harness/report/schema.ts';

/** Steps that verify data (the time the issue asks to keep at or below the run time before it). */
const VERIFY = /finishes and (every block )?verif|finishes and is verified|verified I\/O|health back/i;

interface Row {
  test: string;
  status: string;
  wallMs: number;
  inStepsMs: number;
  verifyMs: number;
  beforeVerifyMs: number;
}

/** Length of the union of [start, start + duration) intervals (nested steps are counted once). */
export function unionMs(spans: { startedAt: number; durationMs: number }[]): number {
  const s = spans.map((x) => [x.startedAt, x.startedAt + x.durationMs] as const).sort((a, b) => a[0] - b[0]);
  let total = 0;
  let cur: [number, number] | undefined;
  for (const [a, b] of s) {
    if (!cur || a > cur[1]) {
      if (cur) total += cur[1] - cur[0];
      cur = [a, b];
    } else cur[1] = Math.max(cur[1], b);
  }
  if (cur) total += cur[1] - cur[0];
  return total;
}

export function rows(report: RunReport): Row[] {
  return report.tests
    .filter((t) => t.status !== 'skipped')
    .map((t) => {
      const verify = t.steps.filter((s) => VERIFY.test(s.name));
      const firstVerify = verify.length ? Math.min(...verify.map((s) => s.startedAt)) : undefined;
      const stepsBefore = firstVerify === undefined ? [] : t.steps.filter((s) => s.startedAt < firstVerify && !VERIFY.test(s.name));
      return {
        test: `${t.planId ?? ''} ${t.ulp ?? ''}`.trim() || t.title.slice(0, 30),
        status: t.status,
        wallMs: t.durationMs,
        inStepsMs: unionMs(t.steps),
        verifyMs: unionMs(verify),
        beforeVerifyMs: firstVerify === undefined ? 0 : Math.max(0, firstVerify - Math.min(...stepsBefore.map((s) => s.startedAt), firstVerify)),
      };
    });
}

function table(rs: Row[]): string {
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  const lines = [`${'test'.padEnd(22)} ${'status'.padEnd(14)} ${'wall'.padStart(8)} ${'in steps'.padStart(9)} ${'overhead'.padStart(9)} ${'verify'.padStart(8)} ${'I/O before'.padStart(10)}`];
  for (const r of rs) {
    lines.push(`${r.test.padEnd(22)} ${r.status.padEnd(14)} ${s(r.wallMs).padStart(8)} ${s(r.inStepsMs).padStart(9)} ${`${(((r.wallMs - r.inStepsMs) / r.wallMs) * 100).toFixed(0)} %`.padStart(9)} ${s(r.verifyMs).padStart(8)} ${s(r.beforeVerifyMs).padStart(10)}`);
  }
  const wall = rs.reduce((a, r) => a + r.wallMs, 0);
  const steps = rs.reduce((a, r) => a + r.inStepsMs, 0);
  lines.push(`total: ${(wall / 1000).toFixed(1)} s wall, ${(steps / 1000).toFixed(1)} s in steps, overhead ${wall ? (((wall - steps) / wall) * 100).toFixed(1) : '0'} %`);
  return lines.join('\n');
}

/** Where the time outside the steps goes: the harness's own work, summed over the tests. */
function phases(report: RunReport): string {
  const sum = new Map<string, { ms: number; n: number }>();
  for (const t of report.tests) for (const h of t.harness ?? []) {
    const x = sum.get(h.name) ?? { ms: 0, n: 0 };
    sum.set(h.name, { ms: x.ms + h.durationMs, n: x.n + 1 });
  }
  if (!sum.size) return '';
  const rowsOut = [...sum].sort((a, b) => b[1].ms - a[1].ms).map(([name, x]) => `  ${name.padEnd(26)} ${`${(x.ms / 1000).toFixed(1)} s`.padStart(9)}  (${x.n}×, ${(x.ms / x.n / 1000).toFixed(2)} s each)`);
  return `\nthe harness's own work:\n${rowsOut.join('\n')}`;
}

function latest(dir: string): string {
  if (existsSync(join(dir, 'report.json'))) return dir;
  const runs = readdirSync(dir).filter((d) => d !== 'latest' && existsSync(join(dir, d, 'report.json'))).sort();
  if (!runs.length) throw new Error(`no report.json under ${dir}`);
  return join(dir, runs[runs.length - 1]!);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const at = args.indexOf('--report');
  let dir: string;
  if (at >= 0) dir = latest(resolve(args[at + 1]!));
  else {
    const reports = mkdtempSync(join(tmpdir(), 'rf-bench-suite-'));
    const extra = args.includes('--') ? args.slice(args.indexOf('--') + 1) : [];
    const t0 = Date.now();
    const r = spawnSync('./bin/rdma-failover.js', ['run', '--quick', '--reports', reports, ...extra], { stdio: 'inherit', env: { ...process.env, RDMA_FAILOVER_PDF: '0' } });
    console.log(`\nrdma-failover run --quick: exit ${r.status}, ${((Date.now() - t0) / 1000).toFixed(1)} s including lab set-up and restore`);
    dir = latest(reports);
  }
  const report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as RunReport;
  console.log(`\n${dir}\n${table(rows(report))}${phases(report)}`);
}
