// Crash-proof runs (issue 8), for real in the VM lab: a frozen guest is detected within the bound;
// a guest kernel that panics mid-test fails that test with its evidence and the lab recovers;
// the kernel matrix runs the same test on two Debian kernels and reports them side by side.
import { expect } from 'chai';
import { mkdtempSync, readdirSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite, test } from '../../harness/fixture/test.ts';
import { probeNode } from '../../harness/health/health.ts';
import { now } from '../../harness/clock.ts';
import { cli } from '../support/cli.ts';
import { releaseSharedLab } from '../../harness/fixture/lab-session.ts';
import type { RunReport } from '../../harness/report/schema.ts';
import type { Matrix } from '../../harness/report/matrix.ts';
import { prepareKernel } from '../../harness/vmlab/kernel.ts';

/** Child runs must see every test (the parent CI run excludes the long ones) and their own reports. */
function childEnv(reports: string): Record<string, string> {
  return { RDMA_FAILOVER_EXCLUDE_TAGS: '', RDMA_FAILOVER_TAGS: '', RDMA_FAILOVER_REPORTS: reports, RDMA_FAILOVER_PDF: '0' };
}

function latestReport(dir: string): RunReport {
  const run = readdirSync(dir).filter((d) => d !== 'latest' && existsSync(join(dir, d, 'report.json'))).sort().pop();
  if (!run) throw new Error(`no report in ${dir}`);
  return JSON.parse(readFileSync(join(dir, run, 'report.json'), 'utf8')) as RunReport;
}

suite('crash-proof runs: a frozen guest', { requires: { nodes: 2, capabilities: ['machines'] } }, () => {
  test('a guest frozen with QMP stop is reported unresponsive within the bound', async (t) => {
    const [a] = t.pair();
    const bound = t.topology.health?.unresponsive_after_ms ?? 15_000;
    const machines = t.lab.machines!;
    await t.scope.use('guest paused', () => machines.pause(a), () => machines.resume(a));
    const t0 = now();
    const findings = await probeNode(t.node(a), { timeoutMs: bound });
    const took = now() - t0;
    t.metric('unresponsive detected after', took);
    expect(findings.map((f) => f.kind)).to.deep.equal(['unresponsive']);
    expect(took, 'detected within the bound').to.be.at.most(bound + 2000);
  });
});

describe('crash-proof runs: child runs of the certification suites', function () {
  this.timeout(1_800_000);
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rf-crash-'));
    // The child runs drive the lab themselves.
    await releaseSharedLab();
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a guest kernel that panics mid-test: that test fails with the console evidence, the lab is repaired, the next suite\'s test passes (its requirements probed after the repair)', async () => {
    const reports = join(dir, 'panic');
    const r = await cli(['run', 'test/fixtures/specs/panic.fixture.ts'], { timeoutMs: 900_000, env: childEnv(reports) });
    const rep = latestReport(reports);
    const panicked = rep.tests.find((x) => x.planId === 'CM-81');
    const next = rep.tests.find((x) => x.planId === 'CM-82');
    expect(panicked, r.stdout.slice(-2000)).to.exist;
    expect(next, r.stdout.slice(-2000)).to.exist;
    expect(panicked!.status, 'a test whose node died never passes').to.equal('failed');
    const dead = panicked!.health.filter((h) => ['unresponsive', 'kernel-log', 'oopsed'].includes(h.kind));
    expect(dead.map((h) => h.kind), JSON.stringify(panicked!.health).slice(0, 2000)).to.not.be.empty;
    expect(dead.flatMap((h) => h.evidence).join('\n'), 'the console shows the panic').to.match(/Kernel panic|sysrq: Trigger a crash/);
    // Marked down while the body ran: its command on the dead node failed within a poll of the
    // console and the probe's bound (1 s + 5 s), not at SSH's keepalive (15 s) or its own timeout.
    const ended = panicked!.metrics.find((m) => m.name === 'the long command on the crashed node ended after')?.value;
    const outcome = (JSON.parse(panicked!.attachments.find((x) => x.name === 'the long command on the crashed node')?.body ?? '{}') as { outcome?: string }).outcome;
    expect(outcome, 'the long command on the crashed node').to.match(/ lost: node-a is down: its serial console shows a kernel crash: Kernel panic/);
    expect(ended, 'the body learnt of the crash after').to.be.within(1000, 10_000);
    // Marked down, the dead node costs no timeouts: its clean-up failed at once, saying why.
    expect(panicked!.error?.message, 'the clean-up on the dead node').to.match(/teardown of a clean-up on the crashed node failed: node-a: `true` not run: node-a is down: its serial console shows a kernel crash: Kernel panic/);
    const spent = (name: string) => (panicked!.harness ?? []).filter((h) => h.name === name).reduce((a, h) => a + h.durationMs, 0);
    expect(spent('teardown'), 'the teardown waited for nothing').to.be.below(10_000);
    expect(spent('crashed nodes: still answering?'), 'the probe of the crashed node, at its bound').to.be.within(1, 7000);
    expect(next!.status, next!.error?.message).to.equal('passed');
    expect(next!.repairs.map((x) => x.action).join(' '), 'the dead node was rebooted before the next test').to.match(/reboot/);
    expect(r.code, 'news: the run exits 1').to.equal(1);
    process.stdout.write(`      measured: CM-81 ${panicked!.status} (${dead.map((h) => h.kind).join(', ')}; its body's command failed after ${Math.round(ended!)} ms); CM-82 ${next!.status} after ${next!.repairs.map((x) => x.action).join(', ')}\n`);
  });

  it('the matrix runs the same test on Debian stable and backports kernels and reports them side by side', async () => {
    const reports = join(dir, 'matrix');
    const r = await cli(['matrix', '--kernels', 'debian-stable,debian-backports', 'rds.failover', '--grep', "UL-RDS-01 carrier loss on the client's active slave", '--reports', reports], { timeoutMs: 1_500_000, env: childEnv(join(reports, 'unused')) });
    const mdir = readdirSync(reports).find((d) => d.startsWith('matrix-'))!;
    const m = JSON.parse(readFileSync(join(reports, mdir, 'matrix.json'), 'utf8')) as Matrix;
    // The kernels the lab resolves for those names (cached by the run above), not literals.
    const want = await Promise.all((['debian-stable', 'debian-backports'] as const).map(async (k) => `${k}:${(await prepareKernel(k)).version}`));
    expect(m.kernels.map((k) => k.kernel), r.stderr.slice(-2000)).to.deep.equal(want);
    const row = m.rows.find((x) => x.planId === 'UL-RDS-01')!;
    // RDS recovers from a client-side failover on 6.1 (measured); on rxe with 6.12 its connection
    // shutdown never completes (known-issues.yaml rxe-6.12-rds-shutdown-never-flushed): anything else is news.
    expect(row.cells[0]!.status, row.cells[0]!.reason).to.equal('passed');
    expect(row.cells[1]!.status, row.cells[1]!.reason).to.be.oneOf(['passed', 'known-failure']);
    expect(readFileSync(join(reports, mdir, 'matrix.html'), 'utf8')).to.include(want[1]!);
    for (const k of m.kernels) expect(existsSync(join(k.dir, 'junit.xml')), `JUnit for ${k.kernel}`).to.equal(true);
    process.stdout.write(`      measured: ${row.cells.map((c, i) => `${m.kernels[i]!.kernel} ${c.status}${c.reason && c.status !== 'passed' ? ` (${c.reason.slice(0, 120)})` : ''}`).join('; ')}\n`);
  });
});
