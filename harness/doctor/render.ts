import type { DoctorReport, CheckStatus } from './doctor.ts';
import { bold, dim, green, red, yellow } from '../cli/style.ts';

const MARK: Record<CheckStatus, string> = { ok: green('✔'), warn: yellow('!'), fail: red('✖'), info: dim('·') };

export function renderDoctor(r: DoctorReport): string {
  const out: string[] = [bold(`${r.kind === 'vm' ? 'VM' : 'real'} lab`) + dim(` (${r.topology})`)];
  for (const c of r.capabilities) out.push(`  ${MARK[c.status]} ${c.title}: ${c.detail}${c.status !== 'ok' ? dim(` — needed by ${c.neededBy}`) : ''}`);
  out.push('');
  for (const n of r.nodes) {
    out.push(bold(`${n.node}`) + dim(` (${n.address})`) + (n.reachable ? '' : red('  UNREACHABLE')));
    for (const c of n.checks) {
      const needed = c.neededBy && c.status !== 'ok' && c.status !== 'info' ? dim(` — needed by ${c.neededBy}`) : '';
      out.push(`  ${MARK[c.status]} ${c.title}: ${c.detail}${needed}`);
      if (c.fix && c.status !== 'ok') out.push(`      ${dim('fix:')} ${c.fix}`);
    }
    out.push('');
  }
  const fails = r.nodes.flatMap((n) => n.checks.filter((c) => c.status === 'fail').map((c) => `${n.node}: ${c.title}`));
  const warns = r.nodes.reduce((a, n) => a + n.checks.filter((c) => c.status === 'warn' && c.neededBy).length, 0);
  out.push(
    r.ok
      ? green(`ready: every required item is present${warns ? ` (${warns} optional missing: the suites that need them will be skipped)` : ''}`)
      : red(`not ready: ${fails.length} required item(s) missing: ${fails.join('; ')}`),
  );
  return out.join('\n');
}
