// A matrix: the same certification set run on several kernels and soft transports, side by side —
// verdict, outage per phase, the crash evidence where a kernel died, and per row whose failure it
// is when one kernel ran more than one transport (fails on one: the transport's; on all: the ULP's).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { testKey, testLabel } from './compare.ts';
import type { ReportTest, RunReport } from './schema.ts';
import { htmlToPdf } from './write.ts';

export interface MatrixCell {
  status: ReportTest['status'] | 'absent';
  failoverMs?: number;
  reconnectMs?: number;
  ioResumedMs?: number;
  /** the first line of the failure, or of the health evidence */
  reason?: string;
  /** crash / wedge evidence (kernel log, stuck tasks, GSI QP) */
  evidence?: string[];
  retried?: string;
}

export interface Matrix {
  id: string;
  createdAt: string;
  kernels: { label: string; kernel: string; transport?: string; runId: string; dir: string; summary: RunReport['summary'] }[];
  rows: { key: string; planId?: string; title: string; cells: MatrixCell[]; diagnosis?: string }[];
}

const failedStatus = (c: MatrixCell) => c.status === 'failed' || c.status === 'known-failure';
const ranStatus = (c: MatrixCell) => failedStatus(c) || c.status === 'passed';

/** Whose failure a row shows, from the columns of one kernel that ran different transports. */
export function diagnose(columns: Matrix['kernels'], cells: MatrixCell[]): string | undefined {
  const out: string[] = [];
  for (const kernel of [...new Set(columns.map((c) => c.kernel))]) {
    const idx = columns.map((c, i) => (c.kernel === kernel && c.transport ? i : -1)).filter((i) => i >= 0 && ranStatus(cells[i]!));
    if (new Set(idx.map((i) => columns[i]!.transport)).size < 2) continue;
    const failed = idx.filter((i) => failedStatus(cells[i]!)).map((i) => columns[i]!.transport!);
    if (!failed.length) continue;
    out.push(failed.length === idx.length
      ? `${kernel}: fails on every transport (${failed.join(', ')}): the ULP's or the kernel's, not the transport's`
      : `${kernel}: fails on ${failed.join(', ')} only: the transport's, not the ULP's`);
  }
  return out.length ? out.join('; ') : undefined;
}


function cell(t: ReportTest | undefined): MatrixCell {
  if (!t) return { status: 'absent' };
  const max = (f: (s: ReportTest['timelines'][number]['summary']) => number | undefined) => {
    const xs = t.timelines.map((x) => f(x.summary)).filter((x): x is number => x !== undefined);
    return xs.length ? Math.max(...xs) : undefined;
  };
  const evidence = t.health.flatMap((h) => [`${h.node} [${h.kind}${h.labInfrastructure ? ', lab' : ''}]: ${h.detail}`, ...h.evidence.slice(0, 40)]);
  const c: MatrixCell = { status: t.status };
  const f = max((s) => s.failoverMs);
  const r = max((s) => s.reconnectMs);
  const io = max((s) => s.ioResumedMs);
  if (f !== undefined) c.failoverMs = f;
  if (r !== undefined) c.reconnectMs = r;
  if (io !== undefined) c.ioResumedMs = io;
  const reason = t.error?.message.split('\n')[0] ?? t.skipReason ?? (t.knownFailure ? `${t.knownFailure.id}: ${t.knownFailure.summary}` : undefined);
  if (reason) c.reason = reason;
  if (evidence.length) c.evidence = evidence;
  if (t.attempts.length) c.retried = t.attempts.map((a) => a.infrastructure).join('; ');
  return c;
}

export function buildMatrix(id: string, runs: { label: string; dir: string; report: RunReport }[]): Matrix {
  const keys: { key: string; planId?: string; title: string }[] = [];
  for (const r of runs) {
    for (const t of r.report.tests) {
      if (!keys.some((k) => k.key === testKey(t))) keys.push({ key: testKey(t), ...(t.planId ? { planId: t.planId } : {}), title: t.title });
    }
  }
  const kernels = runs.map((r) => {
    const transport = r.report.run.topology?.transports?.join('+');
    return { label: r.label, kernel: r.report.run.kernel ?? r.report.environment[0]?.kernel ?? r.label, ...(transport ? { transport } : {}), runId: r.report.run.id, dir: r.dir, summary: r.report.summary };
  });
  return {
    id,
    createdAt: new Date().toISOString(),
    kernels,
    rows: keys.map((k) => {
      const cells = runs.map((r) => cell(r.report.tests.find((t) => testKey(t) === k.key)));
      const diagnosis = diagnose(kernels, cells);
      return { ...k, cells, ...(diagnosis ? { diagnosis } : {}) };
    }),
  };
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const BADGE: Record<MatrixCell['status'], string> = { passed: 'PASS', failed: 'FAIL', skipped: 'SKIP', 'known-failure': 'FAIL (known)', interrupted: 'INTERRUPTED', absent: '—' };

export function matrixHtml(m: Matrix): string {
  const head = m.kernels.map((k) => `<th>${esc(k.kernel)}${k.transport ? `<br>${esc(k.transport)}` : ''}<br><small>${k.summary.passed} pass · ${k.summary.failed} fail · ${k.summary.skipped} skip</small></th>`).join('');
  const rows = m.rows
    .map((r) => {
      const cells = r.cells
        .map((c) => {
          const times = [c.failoverMs !== undefined ? `failover ${c.failoverMs} ms` : '', c.reconnectMs !== undefined ? `re-est. ${c.reconnectMs} ms` : '', c.ioResumedMs !== undefined ? `I/O ${c.ioResumedMs} ms` : ''].filter(Boolean).join('<br>');
          const ev = c.evidence?.length ? `<details><summary>evidence</summary><pre>${esc(c.evidence.join('\n'))}</pre></details>` : '';
          return `<td class="${c.status}"><b>${BADGE[c.status]}</b>${times ? `<br><small>${times}</small>` : ''}${c.reason ? `<br><small>${esc(c.reason.slice(0, 200))}</small>` : ''}${c.retried ? `<br><small>retried after: ${esc(c.retried)}</small>` : ''}${ev}</td>`;
        })
        .join('');
      return `<tr><td>${esc(r.planId ?? '')}</td><td>${esc(r.title)}${r.diagnosis ? `<br><small><b>${esc(r.diagnosis)}</b></small>` : ''}</td>${cells}</tr>`;
    })
    .join('\n');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>rdma-failover matrix ${esc(m.id)}</title><style>
body{font:13px/1.4 system-ui,sans-serif;margin:24px;max-width:1300px}table{border-collapse:collapse;width:100%}th,td{border:1px solid #ccc;padding:4px 6px;vertical-align:top;text-align:left}
th{background:#f2f2f2}td.passed{background:#e8f5e9}td.failed{background:#ffebee}td.skipped{background:#f5f5f5}td.known-failure{background:#fff3e0}
pre{white-space:pre-wrap;font-size:10px;max-height:300px;overflow:auto;background:#fafafa}small{color:#444}
</style></head><body><h1>Matrix: kernels × transports</h1><p>matrix ${esc(m.id)} · ${esc(m.createdAt)} · runs: ${m.kernels.map((k) => `${esc(k.label)} → ${esc(k.runId)}`).join(', ')}</p>
<table><tr><th>ID</th><th>test</th>${head}</tr>
${rows}</table></body></html>
`;
}

export function renderMatrixText(m: Matrix): string {
  const out = [`matrix ${m.id}`, ''];
  for (const r of m.rows) {
    out.push(testLabel(r));
    if (r.diagnosis) out.push(`    → ${r.diagnosis}`);
    r.cells.forEach((c, i) => {
      const t = [c.failoverMs !== undefined ? `failover ${c.failoverMs} ms` : '', c.ioResumedMs !== undefined ? `I/O resumed ${c.ioResumedMs} ms` : ''].filter(Boolean).join(', ');
      const col = m.kernels[i]!;
      out.push(`    ${`${col.kernel}${col.transport ? ` ${col.transport}` : ''}`.padEnd(44)} ${BADGE[c.status].padEnd(16)} ${t}${c.reason && c.status !== 'passed' ? `  — ${c.reason.slice(0, 140)}` : ''}`);
    });
  }
  return out.join('\n');
}

export async function writeMatrix(m: Matrix, dir: string, pdf = true): Promise<{ json: string; html: string; pdf?: string }> {
  const json = join(dir, 'matrix.json');
  const html = join(dir, 'matrix.html');
  writeFileSync(json, JSON.stringify(m, null, 2));
  const page = matrixHtml(m);
  writeFileSync(html, page);
  if (!pdf) return { json, html };
  try {
    await htmlToPdf(page, join(dir, 'matrix.pdf'));
    return { json, html, pdf: join(dir, 'matrix.pdf') };
  } catch {
    return { json, html };
  }
}
