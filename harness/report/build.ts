// Test records → the run report (the single source of truth for every output format).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { TestRecord } from '../fixture/test.ts';
import { PROJECT_ROOT } from '../vmlab/paths.ts';
import type { RunContext } from './registry.ts';
import { redactText } from '../secrets.ts';
import type { ReportTest, RunReport } from './schema.ts';
import { describeCmId } from '../assert/evidence.ts';

export interface CollectedTest {
  title: string;
  fullTitle: string;
  suite: string;
  file?: string;
  state: 'passed' | 'failed' | 'pending' | 'interrupted';
  durationMs: number;
  error?: { message: string; stack?: string };
  record?: TestRecord;
}

// eslint-disable-next-line no-control-regex -- terminal colour codes in error messages
const ANSI = /\x1b\[[0-9;]*m/g;

export function harnessVersion(): { version: string; commit?: string } {
  const pkg = JSON.parse(readFileSync(resolve(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string };
  let commit: string | undefined;
  try {
    commit = execFileSync('git', ['-C', PROJECT_ROOT, 'rev-parse', '--short=12', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    commit = undefined;
  }
  return { version: pkg.version, ...(commit ? { commit } : {}) };
}

export function newRunId(d = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}-${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}-${Math.random().toString(36).slice(2, 6)}`;
}

function testEntry(c: CollectedTest): ReportTest {
  const r = c.record;
  const status: ReportTest['status'] = c.state === 'interrupted' ? 'interrupted' : c.state === 'pending' ? 'skipped' : c.state === 'failed' ? 'failed' : r?.knownFailure ? 'known-failure' : 'passed';
  const ev = r?.evidence;
  const attachments = [...(r?.attachments ?? [])];
  if (status === 'failed' && ev) {
    // The kernel log of a failed test, folded in the HTML: what a kernel developer asks for first.
    const lines = ev.events.filter((e) => e.source === 'kmsg').slice(-400).map((e) => (e.source === 'kmsg' ? `${e.node} [${e.kernelTs.toFixed(6)}] ${e.text}` : ''));
    if (lines.length) attachments.push({ name: 'kernel log during the test', contentType: 'text/plain', body: lines.join('\n') });
    // The RDMA CM's own account (rdma_cma tracepoints) and each node's first cm_id snapshot: which
    // events reached which id decides between kernel mechanisms (UNREACHABLE before an ADDR_CHANGE,
    // or not); without them a failure that stops at a step cannot be traced after the run.
    const cma = ev.events.filter((e) => e.source === 'cma').slice(-400).map((e) => (e.source === 'cma' ? `${e.node} ${(e.raw ?? `${e.point} cm.id=${e.cmId ?? '?'} ${e.event ?? ''}`).trim()}` : ''));
    if (cma.length) attachments.push({ name: 'RDMA CM trace during the test', contentType: 'text/plain', body: cma.join('\n') });
    const firstRes = [...new Set(ev.events.filter((e) => e.source === 'res').map((e) => e.node))].map((n) => ev.events.find((e) => e.source === 'res' && e.node === n));
    const ids = firstRes.flatMap((e) => (e?.source === 'res' ? e.cmIds.map((c) => `${e.node} cm-idn ${c.cmIdn ?? '?'} ${describeCmId(c)}`) : []));
    if (ids.length) attachments.push({ name: 'cm_ids when the monitors started (rdma res)', contentType: 'text/plain', body: ids.join('\n') });
  }
  return {
    ...(r?.planId ? { planId: r.planId } : {}),
    title: c.title,
    fullTitle: c.fullTitle,
    suite: c.suite,
    ...(c.file ? { file: c.file } : {}),
    status,
    durationMs: Math.max(0, Math.round(c.durationMs)),
    ...(c.error && status === 'failed' ? { error: { message: c.error.message.replace(ANSI, ''), ...(c.error.stack ? { stack: c.error.stack.replace(ANSI, '') } : {}) } } : {}),
    ...(r?.skipReason ? { skipReason: r.skipReason } : {}),
    ...(r?.knownFailure ? { knownFailure: r.knownFailure } : {}),
    ...(r?.ulp ? { ulp: r.ulp } : {}),
    steps: r?.steps ?? [],
    ...(r?.harness?.length ? { harness: r.harness } : {}),
    metrics: r?.metrics ?? [],
    timelines: ev?.timelines ?? [],
    ...(ev ? { workloads: ev.workloads.map((w) => ({ workload: w.workload, ulp: w.ulp, dataOk: w.dataOk, summary: w.summary, errors: w.errors.slice(0, 20) })) } : {}),
    health: r?.health ?? [],
    attempts: r?.attempts ?? [],
    repairs: r?.repairs ?? [],
    attachments,
  };
}

export interface RepeatStat {
  title: string;
  planId?: string;
  runs: number;
  passed: number;
  failed: number;
  known: number;
  skipped: number;
  /** passed (or failed the known way) / runs that ran */
  passRate: number;
  verdicts: string[];
  /** outage (I/O resumed, else re-established) over the runs that measured one */
  outage?: { minMs: number; medianMs: number; p90Ms: number; maxMs: number; samples: number };
  /** the verdict changed between repeats: never silently a PASS */
  unstable: boolean;
}

/** " [repeat i/N]" at the end of a repeated test's title */
export const REPEAT = / \[repeat (\d+)\/(\d+)\]$/;

/** Per test repeated with --repeat: pass rate, outage distribution, and whether its verdict changed. */
export function repeatStats(tests: readonly CollectedTest[]): RepeatStat[] {
  const groups = new Map<string, CollectedTest[]>();
  for (const t of tests) {
    if (!REPEAT.test(t.title)) continue;
    const key = t.fullTitle.replace(REPEAT, '');
    groups.set(key, [...(groups.get(key) ?? []), t]);
  }
  return [...groups.values()].map((g) => {
    const verdict = (t: CollectedTest) => (t.state === 'pending' ? 'skipped' : t.state === 'passed' ? (t.record?.knownFailure ? 'known' : 'passed') : 'failed');
    const verdicts = g.map(verdict);
    const ran = verdicts.filter((v) => v !== 'skipped');
    const outages = g
      .flatMap((t) => (t.record?.evidence?.timelines ?? []).filter((tl) => tl.ulp !== 'bond').map((tl) => tl.summary.ioResumedMs ?? tl.summary.reconnectMs))
      .filter((x): x is number => x !== undefined)
      .sort((a, b) => a - b);
    const q = (p: number) => outages[Math.min(outages.length - 1, Math.floor(p * outages.length))]!;
    return {
      title: g[0]!.title.replace(REPEAT, ''),
      ...(g[0]!.record?.planId ? { planId: g[0]!.record.planId } : {}),
      runs: g.length,
      passed: verdicts.filter((v) => v === 'passed').length,
      failed: verdicts.filter((v) => v === 'failed').length,
      known: verdicts.filter((v) => v === 'known').length,
      skipped: verdicts.filter((v) => v === 'skipped').length,
      passRate: ran.length ? ran.filter((v) => v !== 'failed').length / ran.length : 0,
      verdicts,
      ...(outages.length ? { outage: { minMs: outages[0]!, medianMs: Math.round(median(outages) * 10) / 10, p90Ms: q(0.9), maxMs: outages[outages.length - 1]!, samples: outages.length } } : {}),
      unstable: new Set(ran).size > 1,
    };
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

export function buildReport(tests: CollectedTest[], ctx: RunContext, meta: { id: string; startedAt: Date; finishedAt: Date; command: string }): RunReport {
  const entries = tests.map(testEntry);
  const byUlp = new Map<string, { ms: number; test: string }[]>();
  for (const t of entries) {
    if (t.status !== 'passed') continue;
    for (const tl of t.timelines) {
      const ms = tl.summary.ioResumedMs ?? tl.summary.reconnectMs;
      if (ms === undefined || tl.ulp === 'bond') continue;
      byUlp.set(tl.ulp, [...(byUlp.get(tl.ulp) ?? []), { ms, test: t.planId ?? t.title }]);
    }
  }
  const v = harnessVersion();
  return {
    schemaVersion: 1,
    run: {
      id: meta.id,
      startedAt: meta.startedAt.toISOString(),
      finishedAt: meta.finishedAt.toISOString(),
      harnessVersion: v.version,
      ...(v.commit ? { gitCommit: v.commit } : {}),
      command: meta.command,
      ...(ctx.topology ? { topology: ctx.topology } : {}),
      ...(ctx.kernel ? { kernel: ctx.kernel } : {}),
      ...(process.env.RDMA_FAILOVER_SHARD ? { shard: process.env.RDMA_FAILOVER_SHARD } : {}),
      ...(ctx.stopped ? { stopped: ctx.stopped } : {}),
      ...(ctx.interrupted ? { interrupted: ctx.interrupted } : {}),
      ...(ctx.notRestored ? { notRestored: ctx.notRestored } : {}),
    },
    environment: ctx.environment,
    tests: entries,
    summary: {
      passed: entries.filter((t) => t.status === 'passed').length,
      failed: entries.filter((t) => t.status === 'failed').length,
      skipped: entries.filter((t) => t.status === 'skipped').length,
      knownFailures: entries.filter((t) => t.status === 'known-failure').length,
      interrupted: entries.filter((t) => t.status === 'interrupted').length,
      ...(tests.some((t) => REPEAT.test(t.title)) ? { repeats: repeatStats(tests) } : {}),
      total: entries.length,
      outage: [...byUlp.entries()].map(([ulp, xs]) => {
        const worst = xs.reduce((a, b) => (b.ms > a.ms ? b : a));
        return { ulp, count: xs.length, medianMs: Math.round(median(xs.map((x) => x.ms)) * 10) / 10, worstMs: worst.ms, worstTest: worst.test };
      }),
    },
  };
}

/** Removes secrets from any string in the report: registered secrets, key material (blocks, lines
 *  printed one by one, long base64 runs), and the topology's key paths. */
export function redact<T>(value: T, secrets: readonly string[]): T {
  const list = [...new Set(secrets.filter((s) => s.length >= 4))].sort((a, b) => b.length - a.length);
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') {
      let s = redactText(v);
      for (const x of list) s = s.split(x).join('[redacted]');
      return s;
    }
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    return v;
  };
  return walk(value) as T;
}
