// Outage-time changes between two runs (regressions in ms and %), per test and ULP.
import type { RunReport } from './schema.ts';

export interface Change {
  key: string;
  ulp: string;
  metric: 'failover' | 'I/O resumed' | 're-established';
  a?: number;
  b?: number;
  deltaMs?: number;
  deltaPct?: number;
  regression: boolean;
}

export interface Comparison {
  changes: Change[];
  statusChanges: { key: string; a?: string; b?: string }[];
}

/** A test's identity across runs (compare, matrix, verdicts): its plan ID and title. */
export const testKey = (t: RunReport['tests'][number]): string => `${t.planId ?? '-'} ${t.title}`;

/** A test for the reader: its title, with its plan ID in front when the title does not carry it. */
export const testLabel = (t: { planId?: string; title: string }): string => (t.planId && !t.title.startsWith(t.planId) ? `${t.planId} ${t.title}` : t.title);

/** A slower result is a regression when it is worse by more than both thresholds. */
export function compareRuns(a: RunReport, b: RunReport, thresholds = { ms: 20, pct: 10 }): Comparison {
  const changes: Change[] = [];
  const statusChanges: Comparison['statusChanges'] = [];
  const keys = new Set([...a.tests.map(testKey), ...b.tests.map(testKey)]);
  for (const k of keys) {
    const ta = a.tests.find((t) => testKey(t) === k);
    const tb = b.tests.find((t) => testKey(t) === k);
    if (ta?.status !== tb?.status) statusChanges.push({ key: k, ...(ta ? { a: ta.status } : {}), ...(tb ? { b: tb.status } : {}) });
    const ulps = new Set([...(ta?.timelines ?? []), ...(tb?.timelines ?? [])].map((t) => t.ulp));
    for (const ulp of ulps) {
      const pick = (t: typeof ta, f: (s: RunReport['tests'][number]['timelines'][number]['summary']) => number | undefined) => {
        const xs = (t?.timelines ?? []).filter((x) => x.ulp === ulp).map((x) => f(x.summary)).filter((x): x is number => x !== undefined);
        return xs.length ? Math.max(...xs) : undefined;
      };
      for (const [metric, f] of [
        ['failover', (s) => s.failoverMs],
        ['re-established', (s) => s.reconnectMs],
        ['I/O resumed', (s) => s.ioResumedMs],
      ] as [Change['metric'], (s: RunReport['tests'][number]['timelines'][number]['summary']) => number | undefined][]) {
        const va = pick(ta, f);
        const vb = pick(tb, f);
        if (va === undefined && vb === undefined) continue;
        const deltaMs = va !== undefined && vb !== undefined ? Math.round((vb - va) * 10) / 10 : undefined;
        const deltaPct = deltaMs !== undefined && va ? Math.round((deltaMs / va) * 1000) / 10 : undefined;
        const regression = (deltaMs !== undefined && deltaMs > thresholds.ms && (deltaPct ?? Infinity) > thresholds.pct) || (va !== undefined && vb === undefined);
        changes.push({ key: k, ulp, metric, ...(va !== undefined ? { a: va } : {}), ...(vb !== undefined ? { b: vb } : {}), ...(deltaMs !== undefined ? { deltaMs } : {}), ...(deltaPct !== undefined ? { deltaPct } : {}), regression });
      }
    }
  }
  return { changes, statusChanges };
}

export function renderComparison(c: Comparison, a: RunReport, b: RunReport): string {
  const out = [`A: ${a.run.id}${a.run.kernel ? ` (${a.run.kernel})` : ''}`, `B: ${b.run.id}${b.run.kernel ? ` (${b.run.kernel})` : ''}`, ''];
  const fmt = (x?: number) => (x === undefined ? '—' : `${x} ms`);
  for (const ch of c.changes) {
    const d = ch.deltaMs === undefined ? (ch.b === undefined ? 'gone' : 'new') : `${ch.deltaMs >= 0 ? '+' : ''}${ch.deltaMs} ms${ch.deltaPct !== undefined ? ` (${ch.deltaPct >= 0 ? '+' : ''}${ch.deltaPct}%)` : ''}`;
    out.push(`${ch.regression ? 'REGRESSION ' : '           '}${ch.key} — ${ch.ulp} ${ch.metric}: ${fmt(ch.a)} → ${fmt(ch.b)}  ${d}`);
  }
  for (const s of c.statusChanges) out.push(`STATUS     ${s.key}: ${s.a ?? 'absent'} → ${s.b ?? 'absent'}`);
  const n = c.changes.filter((x) => x.regression).length;
  out.push('', `${n} regression(s), ${c.statusChanges.length} status change(s)`);
  return out.join('\n');
}
