// report.html: one self-contained page (no network, no scripts): summary, certification table,
// per-ULP outages, environment, and per test its steps, evidence and failover timelines as SVG.
import type { ReportTest, ReportTimeline, RunReport } from './schema.ts';

/** The title without its leading test plan ID, where the ID is shown beside it (no "UL-X UL-X …"). */
function withoutId(title: string, id: string | undefined): string {
  return id && title.startsWith(`${id} `) ? title.slice(id.length + 1) : title;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const COLOURS: Record<string, string> = {
  fault: '#222222',
  carrier_lost: '#3b6ea5',
  bond_failover: '#1f4e79',
  bond_back: '#5a7fa3',
  bond_address: '#5b8cc0',
  garp_sent: '#2a9d8f',
  garp_seen: '#21867a',
  neigh_updated: '#57b8aa',
  addr_change: '#e76f51',
  disconnected: '#c8553d',
  qp_error: '#9b2226',
  io_stalled: '#9e9e9e',
  addr_resolved: '#f4a261',
  route_resolved: '#e9c46a',
  established: '#e09f3e',
  io_resumed: '#2e7d32',
};

const VERDICT: Record<ReportTest['status'], { text: string; cls: string }> = {
  passed: { text: 'PASS', cls: 'pass' },
  failed: { text: 'FAIL', cls: 'fail' },
  skipped: { text: 'SKIPPED', cls: 'skip' },
  'known-failure': { text: 'FAIL (known)', cls: 'xfail' },
  interrupted: { text: 'INTERRUPTED', cls: 'fail' },
};

/** One bar per phase seen, on a ms axis from the fault: node lanes, one row per phase inside. */
export function timelineSvg(tl: ReportTimeline): string {
  const seen = tl.phases.filter((p) => !p.missing && p.atMs !== undefined);
  const lanes = [...new Set(seen.map((p) => p.node ?? tl.fault.node))];
  const rows = lanes.map((n) => seen.filter((p) => (p.node ?? tl.fault.node) === n).sort((a, b) => a.atMs! - b.atMs!));
  const maxMs = Math.max(100, ...seen.map((p) => p.atMs!)) * 1.05;
  const left = 110;
  const width = 900;
  const right = width - 20;
  const rowH = 17;
  const top = 26;
  const laneTops: number[] = [];
  let y = top;
  for (const r of rows) {
    laneTops.push(y);
    y += r.length * rowH + 8;
  }
  const axisY = y + 4;
  const h = axisY + 24;
  const x = (ms: number) => left + (ms / maxMs) * (right - left);
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="${width}" height="${h}" viewBox="0 0 ${width} ${h}" role="img" aria-label="${esc(`${tl.ulp} failover timeline`)}">`);
  parts.push(`<text x="4" y="15" class="svg-title">${esc(`${tl.ulp}: ${tl.connection}`)} — ms after "${esc(tl.fault.description)}" (±${tl.errorBoundMs} ms)</text>`);
  rows.forEach((r, i) => {
    const ly = laneTops[i]!;
    parts.push(`<rect x="0" y="${ly - 3}" width="${width}" height="${r.length * rowH + 6}" class="lane${i % 2}"/>`);
    parts.push(`<text x="6" y="${ly + 12}" class="lane-label">${esc(lanes[i]!)}</text>`);
  });
  const step = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000].find((st) => maxMs / st <= 10) ?? 100_000;
  parts.push(`<line x1="${left}" y1="${axisY}" x2="${right}" y2="${axisY}" class="axis"/>`);
  for (let ms = 0; ms <= maxMs; ms += step) {
    parts.push(`<line x1="${x(ms).toFixed(1)}" y1="${top - 4}" x2="${x(ms).toFixed(1)}" y2="${axisY + 4}" class="grid"/><text x="${x(ms).toFixed(1)}" y="${axisY + 17}" class="tick">${ms} ms</text>`);
  }
  rows.forEach((r, i) => {
    r.forEach((p, j) => {
      const yy = laneTops[i]! + j * rowH;
      const end = p.atMs!;
      const start = p.id === 'fault' ? 0 : Math.max(0, end - (p.sincePrevMs ?? 0));
      const x0 = x(start);
      const w = Math.max(3, x(end) - x0);
      const label = `${p.label} · ${end} ms`;
      // Labels go right of their bar, or left of it when there is no room.
      const room = right - (x0 + w) > label.length * 5.6 + 6;
      parts.push(
        `<rect class="phase" data-phase="${esc(p.id)}" x="${x0.toFixed(1)}" y="${yy + 2}" width="${w.toFixed(1)}" height="${rowH - 4}" rx="2" fill="${COLOURS[p.id] ?? '#777'}"><title>${esc(`${p.label}: ${end} ms${p.detail ? ` — ${p.detail}` : ''}`)}</title></rect>`,
      );
      parts.push(`<text x="${(room ? x0 + w + 4 : x0 - 4).toFixed(1)}" y="${yy + 12}" class="phase-label" text-anchor="${room ? 'start' : 'end'}">${esc(label)}</text>`);
    });
  });
  parts.push('</svg>');
  return parts.join('');
}

/** What the VM lab's bond carried: soft RoCE, soft iWARP, or both across bonds. */
function vmTransport(topo: NonNullable<RunReport['run']['topology']>): string {
  const t = topo.transports ?? ['rxe'];
  return t.map((x) => (x === 'siw' ? 'siw (soft iWARP)' : x === 'rxe' ? 'rdma_rxe (soft RoCE)' : x)).join(' and ');
}

function timelineBlock(tl: ReportTimeline): string {
  const missing = tl.phases.filter((p) => p.missing);
  const rows = tl.phases
    .filter((p) => !p.missing)
    .map((p) => `<tr><td class="num">${p.atMs} ms</td><td>${esc(p.label)}</td><td>${esc(p.node ?? '')}</td><td>${esc(p.detail ?? '')}</td></tr>`)
    .join('');
  return `<div class="timeline-block">${timelineSvg(tl)}
<table class="phases"><tr><th>at</th><th>phase</th><th>node</th><th>detail</th></tr>${rows}</table>
${missing.length ? `<p class="missing">Not observed: ${missing.map((p) => `<span title="${esc(p.reason ?? '')}">${esc(p.label)}</span>`).join(', ')}</p>` : ''}</div>`;
}

function metric(t: ReportTest, suffix: string): string {
  const m = t.metrics.find((x) => x.name.endsWith(suffix));
  return m ? `${m.value}` : '';
}

function testArticle(t: ReportTest, i: number): string {
  const v = VERDICT[t.status];
  const parts: string[] = [`<article id="t${i}" class="test ${v.cls}"><h3><span class="badge ${v.cls}">${v.text}</span> ${t.planId ? `<b>${esc(t.planId)}</b> ` : ''}${esc(withoutId(t.title, t.planId))}</h3>`];
  parts.push(`<p class="meta">${esc(t.suite)} · ${(t.durationMs / 1000).toFixed(1)} s${t.file ? ` · ${esc(t.file)}` : ''}</p>`);
  if (t.error) parts.push(`<details open class="error"><summary>failure</summary><pre>${esc(t.error.message)}</pre></details>`);
  if (t.skipReason) parts.push(`<p class="skip-reason">Skipped: ${esc(t.skipReason)}</p>`);
  if (t.knownFailure) {
    const k = t.knownFailure;
    parts.push(`<p class="known"><b>Known failure ${esc(k.id)}</b>: ${esc(k.summary)} — reference: ${/^https?:\/\//.test(k.reference) ? `<a href="${esc(k.reference)}">${esc(k.reference)}</a>` : esc(k.reference)} <small>(${esc(k.source)})</small></p>`);
    parts.push(`<details class="xfail"><summary>what happened</summary><pre>${esc(k.observed)}</pre></details>`);
  }
  if (t.attempts.length) parts.push(`<p class="attempts">Retried on a fresh lab after a lab-infrastructure fault: ${t.attempts.map((a) => esc(a.infrastructure)).join('; ')}</p>`);
  if (t.repairs.length) parts.push(`<p class="repairs">Lab repaired before this test: ${t.repairs.map((r) => esc(`${r.node}: ${r.why} → ${r.action}`)).join('; ')}</p>`);
  for (const tl of t.timelines) parts.push(timelineBlock(tl));
  if (t.workloads?.length) parts.push(`<ul class="workloads">${t.workloads.map((w) => `<li class="${w.dataOk ? 'ok' : 'bad'}">${esc(w.workload)}: ${esc(w.summary)}</li>`).join('')}</ul>`);
  if (t.steps.length) {
    parts.push(`<details class="steps"><summary>${t.steps.length} steps</summary><table><tr><th>step</th><th>duration</th></tr>${t.steps.map((s) => `<tr class="${s.error ? 'bad' : ''}"><td>${esc(s.name)}${s.error ? `<br><small>${esc(s.error)}</small>` : ''}</td><td class="num">${(s.durationMs / 1000).toFixed(2)} s</td></tr>`).join('')}</table></details>`);
  }
  if (t.metrics.length) parts.push(`<p class="metrics">${t.metrics.map((m) => `${esc(m.name)}: <b>${m.value}</b> ${esc(m.unit)}`).join(' · ')}</p>`);
  for (const h of t.health) parts.push(`<details class="health"><summary>${esc(`${h.node} [${h.kind}]: ${h.detail}`)}</summary><pre>${esc(h.evidence.join('\n'))}</pre></details>`);
  for (const a of t.attachments) parts.push(`<details class="attachment"><summary>${esc(a.name)}</summary><pre>${esc(a.body)}</pre></details>`);
  parts.push('</article>');
  return parts.join('\n');
}

export function reportHtml(r: RunReport): string {
  const s = r.summary;
  const verdict = s.failed ? `<span class="badge fail">${s.failed} FAILED</span>` : `<span class="badge pass">NO FAILURES</span>`;
  const certRows = r.tests
    .map((t, i) => {
      const v = VERDICT[t.status];
      return `<tr><td>${esc(t.planId ?? '')}</td><td><a href="#t${i}">${esc(withoutId(t.title, t.planId))}</a></td><td><span class="badge ${v.cls}">${v.text}</span></td><td class="num">${metric(t, 'failover')}</td><td class="num">${metric(t, 're-established')}</td><td class="num">${metric(t, 'I/O resumed')}</td></tr>`;
    })
    .join('');
  const outage = (s.outage ?? []).map((o) => `<tr><td>${esc(o.ulp)}</td><td class="num">${o.count}</td><td class="num">${o.medianMs}</td><td class="num">${o.worstMs}</td><td>${esc(o.worstTest ?? '')}</td></tr>`).join('');
  const env = r.environment
    .map(
      (e) =>
        `<tr><td>${esc(e.node)}</td><td>${esc(e.kernel)}</td><td>${esc(e.rdmaCore ?? '')}</td><td>${esc((e.hcas ?? []).map((h) => [h.device, h.model, h.firmware && `fw ${h.firmware}`, h.psid && `PSID ${h.psid}`].filter(Boolean).join(' ')).join('; '))}</td><td>${esc((e.bonds ?? []).map((b) => `${b.name}: ${b.mode ?? '?'}, fail_over_mac ${b.failOverMac ?? '?'}, miimon ${b.miimon ?? '?'}, num_grat_arp ${b.numGratArp ?? '?'}, slaves ${(b.slaves ?? []).join('+')}`).join('; '))}</td><td>${esc(Object.entries(e.modules ?? {}).map(([k, v]) => `${k} ${v}`).join(', '))}</td><td class="num">${e.clock ? `${e.clock.offsetMs} ± ${e.clock.boundMs} ms` : ''}</td></tr>`,
    )
    .join('');
  const topo = r.run.topology;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rdma-failover report ${esc(r.run.id)}</title>
<style>
body{font:13px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1b1b;margin:24px;max-width:1100px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;border-bottom:1px solid #ddd;padding-bottom:3px;margin-top:28px}h3{font-size:14px;margin:0 0 4px}
table{border-collapse:collapse;margin:6px 0;width:100%}th,td{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}th{background:#f3f3f3}
td.num{text-align:right;white-space:nowrap}.meta{color:#666;margin:0 0 6px}
.banner{padding:6px 10px;font-weight:600;border-radius:3px}.banner.fail{background:#fdecea;color:#8e1b1b;border:1px solid #c62828}
.badge{display:inline-block;padding:1px 6px;border-radius:3px;font-weight:600;font-size:11px;color:#fff}
.badge.pass{background:#2e7d32}.badge.fail{background:#c62828}.badge.skip{background:#8d8d8d}.badge.xfail{background:#b26a00}
article.test{border:1px solid #e2e2e2;border-left:5px solid #2e7d32;padding:8px 12px;margin:12px 0;page-break-inside:avoid}
article.fail{border-left-color:#c62828}article.skip{border-left-color:#8d8d8d}article.xfail{border-left-color:#b26a00}
pre{white-space:pre-wrap;background:#f7f7f7;padding:6px;font-size:11px;max-height:420px;overflow:auto}
.missing,.skip-reason,.attempts,.repairs{color:#555}.workloads li.bad{color:#c62828}.workloads li.ok{color:#1b5e20}
svg.timeline{display:block;margin:8px 0;font-size:10px}.lane0{fill:#fafafa}.lane1{fill:#f0f0f0}.axis{stroke:#555}.grid{stroke:#ddd}
.tick{fill:#555;text-anchor:middle}.lane-label{fill:#333;font-weight:600}.phase-label{fill:#222}.svg-title{fill:#333;font-weight:600}
table.phases td,table.phases th{font-size:11px;padding:1px 5px}
@media print{body{margin:0}details{display:block}details>summary{list-style:none}}
</style></head><body>
<header><h1>RDMA failover certification report</h1>
<p class="meta">run ${esc(r.run.id)} · ${esc(r.run.startedAt)} → ${esc(r.run.finishedAt)} · harness ${esc(r.run.harnessVersion)}${r.run.gitCommit ? ` (${esc(r.run.gitCommit)})` : ''}${topo ? ` · topology ${esc(topo.name)} (${esc(topo.kind)}, sha256 ${esc(topo.sha256.slice(0, 12))}…)` : ''}${r.run.kernel ? ` · guest kernel ${esc(r.run.kernel)}` : ''}</p>
${r.run.interrupted ? `<p class="banner fail">RUN INTERRUPTED (${esc(r.run.interrupted.why)}) at ${esc(r.run.interrupted.at)}: the tests after it did not run; the lab was restored.</p>` : ''}
${r.run.notRestored ? `<p class="banner fail">LAB NOT FULLY RESTORED: ${r.run.notRestored.problems.map(esc).join('<br>')}<br>restore journals: ${r.run.notRestored.journals.map(esc).join('<br>')}</p>` : ''}
${r.run.stopped ? `<p class="banner fail">RUN STOPPED: ${esc(r.run.stopped.reason.split('\n')[0] ?? '')}<br>restore journals: ${r.run.stopped.journals.map(esc).join('<br>')}</p>` : ''}
${topo?.kind === 'vm' ? `<p class="meta">Virtual lab: ${vmTransport(topo)} over an active-backup bond with fail_over_mac=active reproduces the IPoIB failover path; IPoIB-only checks are reported SKIPPED.</p>` : ''}
</header>
<section id="summary"><h2>Summary</h2><p>${verdict} ${s.passed} passed · ${s.failed} failed · ${s.skipped} skipped · ${s.knownFailures} known failures${s.interrupted ? ` · ${s.interrupted} interrupted` : ''} · ${s.total} tests</p></section>
${outage ? `<section id="outage"><h2>Outage per ULP (fault → I/O resumed, passing tests)</h2><table><tr><th>ULP</th><th>failovers</th><th>median ms</th><th>worst ms</th><th>worst in</th></tr>${outage}</table></section>` : ''}
<section id="certification"><h2>Certification table</h2><table><tr><th>ID</th><th>test</th><th>verdict</th><th>failover ms</th><th>re-established ms</th><th>I/O resumed ms</th></tr>${certRows}</table></section>
<section id="environment"><h2>Environment</h2><table><tr><th>node</th><th>kernel</th><th>rdma-core</th><th>HCA</th><th>bond</th><th>modules</th><th>clock</th></tr>${env}</table></section>
<section id="tests"><h2>Tests</h2>${r.tests.map(testArticle).join('\n')}</section>
</body></html>
`;
}
