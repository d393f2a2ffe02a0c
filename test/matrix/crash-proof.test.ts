// Crash-proof runs (issue 8), for real in the VM lab: a frozen guest is detected within the bound;
// a kernel that dies under NFS/RDMA flapping is reported with its evidence and the lab recovers;
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

  it('NFS over RDMA under flapping on Debian 6.1: the verdict carries the evidence, the lab recovers, the next test runs', async () => {
    const reports = join(dir, 'nfs');
    const r = await cli(['run', 'nfs.failover', '--grep', 'RF-01 five flaps|RF-03 both links down for less'], { timeoutMs: 1_500_000, env: childEnv(reports) });
    const rep = latestReport(reports);
    const flap = rep.tests.find((x) => x.planId === 'RF-01')!;
    const next = rep.tests.find((x) => x.planId === 'RF-03')!;
    expect(flap, r.stdout.slice(-2000)).to.exist;
    expect(next).to.exist;
    // Whatever the kernel did, the harness said it with evidence — and never passed a sick kernel.
    const sick = flap.health.filter((h) => ['kernel-log', 'd-state', 'unresponsive', 'gsi-qp-error', 'oopsed'].includes(h.kind));
    if (sick.length) {
      expect(flap.status, 'a crashed or wedged kernel never passes').to.equal('failed');
      expect(sick.some((h) => h.evidence.length > 0), 'evidence attached').to.equal(true);
    }
    if (flap.status === 'failed') expect(flap.error?.message).to.be.a('string').and.not.empty;
    // The next test ran (on a repaired lab if the kernel died) and reported a verdict.
    expect(['passed', 'failed']).to.include(next.status);
    // A node that stayed dead or wedged must be repaired first (a logged warning alone needs no repair).
    const wedged = flap.health.filter((h) => ['unresponsive', 'gsi-qp-error', 'oopsed'].includes(h.kind));
    if (wedged.length) expect(next.repairs.length, `the lab was repaired before the next test (${wedged.map((h) => h.detail).join('; ')})`).to.be.greaterThan(0);
    process.stdout.write(`      measured: RF-01 ${flap.status}${sick.length ? ` (${sick.map((h) => `${h.node} ${h.kind}: ${h.detail.slice(0, 100)}`).join('; ')})` : ''}; next test ${next.status}${next.repairs.length ? ` after ${next.repairs.map((x) => x.action).join(', ')}` : ''}\n`);
  });

  it('the matrix runs the same test on Debian stable and backports kernels and reports them side by side', async () => {
    const reports = join(dir, 'matrix');
    const r = await cli(['matrix', '--kernels', 'debian-stable,debian-backports', 'rds.failover', '--grep', "client's active slave", '--reports', reports], { timeoutMs: 1_500_000, env: childEnv(join(reports, 'unused')) });
    const mdir = readdirSync(reports).find((d) => d.startsWith('matrix-'))!;
    const m = JSON.parse(readFileSync(join(reports, mdir, 'matrix.json'), 'utf8')) as Matrix;
    expect(m.kernels.map((k) => k.kernel), r.stderr.slice(-2000)).to.have.length(2);
    expect(m.kernels[0]!.kernel).to.match(/^debian-stable:6\.1\./);
    expect(m.kernels[1]!.kernel).to.match(/^debian-backports:6\.12\./);
    const row = m.rows.find((x) => x.planId === 'UL-RDS-01')!;
    expect(row.cells.map((c) => c.status)).to.not.include('absent');
    for (const c of row.cells) if (c.status === 'failed') expect(c.reason, 'a failure says why').to.be.a('string');
    expect(readFileSync(join(reports, mdir, 'matrix.html'), 'utf8')).to.include('debian-backports:6.12');
    for (const k of m.kernels) expect(existsSync(join(k.dir, 'junit.xml')), `JUnit for ${k.kernel}`).to.equal(true);
    process.stdout.write(`      measured: ${row.cells.map((c, i) => `${m.kernels[i]!.kernel} ${c.status}${c.reason && c.status !== 'passed' ? ` (${c.reason.slice(0, 120)})` : ''}`).join('; ')}\n`);
  });
});
