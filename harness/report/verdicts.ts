// Do verdicts reproduce? Every test's verdict across several runs of the same certification
// (nights, repeats of a fresh lab), and which tests changed. A test that passed in one run and
// failed by an intermittent known issue in another (a race the test provokes but cannot force)
// is told apart from a real change, but never counted as identical.
import type { RunReport } from './schema.ts';
import { testKey, testLabel } from './compare.ts';

type ReportTest = RunReport['tests'][number];

/** passed | failed | skipped | interrupted | known:<issue id> */
export type Verdict = string;

export interface VerdictRow {
  key: string;
  /** for the reader: the title, with its plan ID in front when the title does not carry it */
  label: string;
  /** per run, in the order given; undefined: the test was not in that run */
  verdicts: (Verdict | undefined)[];
  /** the same verdict in every run */
  same: boolean;
  /** differs only between a pass and an intermittent known issue */
  intermittent: boolean;
}

export interface VerdictTable {
  runs: { id: string; kernel?: string; commit?: string; topology?: string; summary: string }[];
  /**
   * What differs between the runs' set-ups (harness commit, topology file, guest kernel): verdicts
   * of different set-ups can still be compared, but they are not repeats of one certification.
   */
  setupDiffers: string[];
  rows: VerdictRow[];
  identical: number;
  /** rows that differ (intermittent ones included) */
  differing: VerdictRow[];
}

export function verdictOf(t: ReportTest): Verdict {
  return t.status === 'known-failure' ? `known:${t.knownFailure?.id ?? '?'}` : t.status;
}

/** The summary line as the console prints it. */
export function summaryLine(r: RunReport): string {
  const s = r.summary;
  return `${s.passed} passed · ${s.failed} failed · ${s.knownFailures} known · ${s.skipped} skipped${s.interrupted ? ` · ${s.interrupted} interrupted` : ''} · ${s.total} tests`;
}

/**
 * `intermittent`: ids of the known issues that are intermittent (a pass is allowed). A row whose
 * verdicts are all "passed" or one such known issue is marked intermittent; anything else that
 * differs — a new failure, a skip, a test missing from a run, two different known issues — is a change.
 */
export function verdictTable(runs: readonly RunReport[], intermittent: ReadonlySet<string>): VerdictTable {
  const keys = new Map<string, string>();
  for (const r of runs) for (const t of r.tests) if (!keys.has(testKey(t))) keys.set(testKey(t), testLabel(t));
  const rows = [...keys].map(([key, label]): VerdictRow => {
    const verdicts = runs.map((r) => {
      const t = r.tests.find((x) => testKey(x) === key);
      return t && verdictOf(t);
    });
    const same = verdicts.every((v) => v !== undefined && v === verdicts[0]);
    const kinds = new Set(verdicts);
    const intermittentOnly = !same && verdicts.every((v) => v === 'passed' || (v?.startsWith('known:') && intermittent.has(v.slice(6)))) && [...kinds].filter((v) => v !== 'passed').length === 1;
    return { key, label, verdicts, same, intermittent: intermittentOnly };
  });
  const topo = (r: RunReport) => (r.run.topology ? `${r.run.topology.name}${r.run.topology.sha256 ? `@${r.run.topology.sha256.slice(0, 12)}` : ''}` : undefined);
  const setup: [string, (r: RunReport) => string | undefined][] = [
    ['harness commit', (r) => r.run.gitCommit],
    ['topology', topo],
    ['guest kernel', (r) => r.run.kernel],
  ];
  const setupDiffers = setup.flatMap(([what, of]) => {
    const seen = runs.map((r) => of(r) ?? 'unknown');
    return new Set(seen).size > 1 ? [`${what}: ${seen.map((v, i) => `run ${i + 1} ${v}`).join(' · ')}`] : [];
  });
  return {
    runs: runs.map((r) => {
      const topology = topo(r);
      return { id: r.run.id, ...(r.run.kernel ? { kernel: r.run.kernel } : {}), ...(r.run.gitCommit ? { commit: r.run.gitCommit } : {}), ...(topology ? { topology } : {}), summary: summaryLine(r) };
    }),
    setupDiffers,
    rows,
    identical: rows.filter((r) => r.same).length,
    differing: rows.filter((r) => !r.same),
  };
}

/** 0: every verdict the same; 3: differences only by intermittent known issues; 1: a change. */
export function verdictsExitCode(t: VerdictTable): number {
  if (!t.differing.length) return 0;
  return t.differing.every((r) => r.intermittent) ? 3 : 1;
}

export function renderVerdicts(t: VerdictTable): string {
  const out = t.runs.map((r, i) => `run ${i + 1}: ${r.id}${r.kernel ? ` (${r.kernel}${r.commit ? `, harness ${r.commit}` : ''})` : r.commit ? ` (harness ${r.commit})` : ''} — ${r.summary}`);
  if (t.setupDiffers.length) out.push('', 'NOT REPEATS OF ONE SET-UP (the verdicts are compared all the same):', ...t.setupDiffers.map((d) => `  ${d}`));
  out.push('', `${t.identical} of ${t.rows.length} tests: the same verdict in all ${t.runs.length} runs`);
  for (const r of t.differing) {
    out.push(`${r.intermittent ? 'INTERMITTENT' : 'CHANGED     '} ${r.label}`);
    out.push(`             ${r.verdicts.map((v, i) => `run ${i + 1}: ${v ?? 'not run'}`).join(' · ')}`);
  }
  const changed = t.differing.filter((r) => !r.intermittent).length;
  out.push('', changed ? `${changed} test(s) changed verdict` : t.differing.length ? `no verdict changed but ${t.differing.length} intermittent known issue(s), hit in some runs only` : 'every verdict reproduced');
  return out.join('\n');
}
