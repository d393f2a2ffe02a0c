// report merge: shard runs (and matrix cells) into one report — every test once, with where it
// ran (run, shard, lab, kernel). Runs of different harness versions or topologies are not merged
// unless the caller says so: their verdicts are not comparable.
import type { RunReport } from './schema.ts';

export class MergeError extends Error {
  override name = 'MergeError';
}

type Test = RunReport['tests'][number];

function kernelOf(r: RunReport): string | undefined {
  return r.run.kernel ?? r.environment[0]?.kernel;
}

export function mergeReports(reports: readonly RunReport[], opts: { force?: boolean; command?: string } = {}): RunReport {
  if (!reports.length) throw new MergeError('nothing to merge');
  const first = reports[0]!;
  const why: string[] = [];
  for (const r of reports.slice(1)) {
    if (r.run.harnessVersion !== first.run.harnessVersion || r.run.gitCommit !== first.run.gitCommit) {
      why.push(`${r.run.id} was made by harness ${r.run.harnessVersion}${r.run.gitCommit ? ` (${r.run.gitCommit})` : ''}, ${first.run.id} by ${first.run.harnessVersion}${first.run.gitCommit ? ` (${first.run.gitCommit})` : ''}`);
    }
    if (r.run.topology?.sha256 !== first.run.topology?.sha256) {
      why.push(`${r.run.id} ran on topology ${r.run.topology?.name ?? '?'} (sha256 ${r.run.topology?.sha256.slice(0, 12) ?? '?'}), ${first.run.id} on ${first.run.topology?.name ?? '?'} (${first.run.topology?.sha256.slice(0, 12) ?? '?'})`);
    }
  }
  if (why.length && !opts.force) throw new MergeError(`these runs are not comparable (merge anyway with --force):\n  ${why.join('\n  ')}`);

  const tests: Test[] = [];
  const seen = new Map<string, string>();
  for (const r of reports) {
    const kernel = kernelOf(r);
    for (const t of r.tests) {
      // The same test on another kernel (a matrix cell) is another result; twice on one is a clash.
      const key = `${t.fullTitle}\u0000${kernel ?? ''}`;
      const twin = seen.get(key);
      if (twin) throw new MergeError(`"${t.fullTitle}"${kernel ? ` on ${kernel}` : ''} is in both ${twin} and ${r.run.id}: shards of one run never share a test`);
      seen.set(key, r.run.id);
      tests.push({ ...t, provenance: { run: r.run.id, ...(r.run.shard ? { shard: r.run.shard } : {}), ...(r.run.topology ? { lab: r.run.topology.name } : {}), ...(kernel ? { kernel } : {}) } });
    }
  }
  const envKey = (e: RunReport['environment'][number]) => `${e.node}\u0000${e.kernel ?? ''}`;
  const environment = [...new Map(reports.flatMap((r) => r.environment).map((e) => [envKey(e), e])).values()];
  const count = (s: Test['status']) => tests.filter((t) => t.status === s).length;
  const starts = reports.map((r) => r.run.startedAt).sort();
  const ends = reports.map((r) => r.run.finishedAt).sort();
  const notRestored = reports.flatMap((r) => (r.run.notRestored ? [r.run.notRestored] : []));
  // One guest kernel for every part (shards, labs) is the run's; a matrix's parts differ, and
  // each test keeps its own in its provenance.
  const kernels = new Set(reports.map((r) => r.run.kernel));
  const kernel = kernels.size === 1 ? first.run.kernel : undefined;
  return {
    schemaVersion: 1,
    run: {
      id: `merged-${first.run.id}`,
      startedAt: starts[0]!,
      finishedAt: ends[ends.length - 1]!,
      harnessVersion: first.run.harnessVersion,
      ...(first.run.gitCommit ? { gitCommit: first.run.gitCommit } : {}),
      command: opts.command ?? 'rdma-failover report merge',
      ...(first.run.topology ? { topology: first.run.topology } : {}),
      ...(kernel ? { kernel } : {}),
      merged: reports.map((r) => r.run.id),
      ...(notRestored.length ? { notRestored: { problems: notRestored.flatMap((n) => n.problems), journals: notRestored.flatMap((n) => n.journals) } } : {}),
    },
    environment,
    tests,
    summary: {
      passed: count('passed'),
      failed: count('failed'),
      skipped: count('skipped'),
      knownFailures: count('known-failure'),
      interrupted: count('interrupted'),
      total: tests.length,
      outage: mergeOutage(reports),
    },
  };
}

/** Per ULP: runs' counts added, the worst kept; the median of medians weighted by count. */
function mergeOutage(reports: readonly RunReport[]): NonNullable<RunReport['summary']['outage']> {
  const by = new Map<string, { count: number; weighted: number; worstMs: number; worstTest: string }>();
  for (const o of reports.flatMap((r) => r.summary.outage ?? [])) {
    const x = by.get(o.ulp);
    const test = o.worstTest ?? '';
    if (!x) by.set(o.ulp, { count: o.count, weighted: o.medianMs * o.count, worstMs: o.worstMs, worstTest: test });
    else by.set(o.ulp, { count: x.count + o.count, weighted: x.weighted + o.medianMs * o.count, ...(o.worstMs > x.worstMs ? { worstMs: o.worstMs, worstTest: test } : { worstMs: x.worstMs, worstTest: x.worstTest }) });
  }
  return [...by].map(([ulp, x]) => ({ ulp, count: x.count, medianMs: Math.round((x.weighted / x.count) * 10) / 10, worstMs: x.worstMs, worstTest: x.worstTest }));
}
