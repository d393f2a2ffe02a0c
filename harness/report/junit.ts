// JUnit XML for CI dashboards (Jenkins, GitLab): one testsuite per suite, failures with messages.
// Kernel logs carry control characters XML 1.0 forbids: they are stripped.
import type { RunReport } from './schema.ts';

// eslint-disable-next-line no-control-regex -- exactly the characters XML 1.0 forbids
const ILLEGAL = /[\x00-\x08\x0B\x0C\x0E-\x1F\uFFFE\uFFFF]/g;

export function xml(s: string): string {
  return s.replace(ILLEGAL, '').replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

export function junitXml(r: RunReport): string {
  const suites = new Map<string, RunReport['tests']>();
  for (const t of r.tests) suites.set(t.suite, [...(suites.get(t.suite) ?? []), t]);
  const out: string[] = ['<?xml version="1.0" encoding="UTF-8"?>'];
  const total = (f: (t: RunReport['tests'][number]) => boolean) => r.tests.filter(f).length;
  out.push(
    `<testsuites name="rdma-failover ${xml(r.run.id)}" tests="${r.tests.length}" failures="${total((t) => t.status === 'failed' || t.status === 'interrupted')}" skipped="${total((t) => t.status === 'skipped' || t.status === 'known-failure')}" time="${(r.tests.reduce((s, t) => s + t.durationMs, 0) / 1000).toFixed(3)}" timestamp="${r.run.startedAt}">`,
  );
  for (const [name, tests] of suites) {
    const failures = tests.filter((t) => t.status === 'failed' || t.status === 'interrupted').length;
    const skipped = tests.filter((t) => t.status === 'skipped' || t.status === 'known-failure').length;
    const time = tests.reduce((s, t) => s + t.durationMs, 0) / 1000;
    out.push(`  <testsuite name="${xml(name)}" tests="${tests.length}" failures="${failures}" errors="0" skipped="${skipped}" time="${time.toFixed(3)}" timestamp="${r.run.startedAt}">`);
    if (r.run.kernel) out.push(`    <properties><property name="kernel" value="${xml(r.run.kernel)}"/></properties>`);
    for (const t of tests) {
      // In a merged report the same test can come from several kernels: the kernel is part of its name.
      const on = t.provenance?.kernel && r.run.merged ? ` [${t.provenance.kernel}]` : '';
      const attrs = `classname="${xml(t.planId ? `${t.planId}.${name}` : name)}" name="${xml(`${t.title}${on}`)}" time="${(t.durationMs / 1000).toFixed(3)}"`;
      const body: string[] = [];
      const props: [string, string | undefined][] = t.provenance ? [['run', t.provenance.run], ['shard', t.provenance.shard], ['lab', t.provenance.lab], ['kernel', t.provenance.kernel]] : [];
      if (t.status === 'interrupted') {
        body.push(`      <failure message="${xml(`interrupted: ${r.run.interrupted?.why ?? 'the run was stopped'}`)}" type="Interrupted">${xml(t.error?.message ?? 'interrupted')}</failure>`);
      } else if (t.status === 'failed') {
        const msg = t.error?.message ?? 'failed';
        body.push(`      <failure message="${xml(msg.split('\n')[0] ?? msg)}" type="AssertionError">${xml([msg, ...t.health.map((h) => `${h.node} [${h.kind}]: ${h.detail}`)].join('\n'))}</failure>`);
      } else if (t.status === 'skipped') {
        body.push(`      <skipped message="${xml(t.skipReason ?? 'skipped')}"/>`);
      } else if (t.status === 'known-failure') {
        // CI engines know no "known" verdict: a skip with the reference keeps the job green on it.
        const k = t.knownFailure;
        body.push(`      <skipped message="${xml(`KNOWN FAILURE ${k?.id ?? ''}: ${k?.summary ?? ''} (${k?.reference ?? ''})`)}"/>`);
        props.push(['known-issue', k?.id ?? ''], ['reference', k?.reference ?? '']);
        body.push(`      <system-out>${xml(`KNOWN FAILURE ${k?.id ?? ''} (${k?.reference ?? ''}): ${k?.summary ?? ''}\nwhat happened:\n${k?.observed ?? ''}`)}</system-out>`);
      }
      const shown = props.filter(([, v]) => v);
      if (shown.length) body.unshift(`      <properties>${shown.map(([k, v]) => `<property name="${k}" value="${xml(v!)}"/>`).join('')}</properties>`);
      if (t.attempts.length) body.push(`      <system-err>${xml(t.attempts.map((a) => `attempt dropped (lab infrastructure): ${a.infrastructure}\n${a.error ?? ''}`).join('\n'))}</system-err>`);
      out.push(body.length ? `    <testcase ${attrs}>\n${body.join('\n')}\n    </testcase>` : `    <testcase ${attrs}/>`);
    }
    out.push('  </testsuite>');
  }
  out.push('</testsuites>', '');
  return out.join('\n');
}
