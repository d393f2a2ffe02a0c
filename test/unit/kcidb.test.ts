// KCIDB export: a recorded run in KCIDB's I/O schema v5, validated against its requirements.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { kcidbErrors, toKcidb } from '../../harness/report/kcidb.ts';
import type { RunReport } from '../../harness/report/schema.ts';

const report = JSON.parse(readFileSync('test/fixtures/reports/vm-run.report.json', 'utf8')) as RunReport;

describe('KCIDB export (I/O schema v5)', () => {
  const data = toKcidb(report, 'rdma_failover_lab');

  it('validates against KCIDB v5: version, checkouts, builds and tests with their required fields', () => {
    expect(kcidbErrors(data)).to.deep.equal([]);
    expect(data.version).to.deep.equal({ major: 5, minor: 0 });
    expect(data.checkouts.length).to.equal(1);
    expect(data.builds.map((b) => b.id)).to.deep.equal([`rdma_failover_lab:${report.run.id}:build:6.1.0-56-amd64`]);
  });

  it('one test per test ID and node, ids prefixed by the origin, statuses mapped (a known failure is a waived FAIL)', () => {
    expect(data.tests.length).to.equal(report.tests.length * report.environment.length);
    for (const t of data.tests) expect(String(t.id)).to.match(/^rdma_failover_lab:/);
    const byPath = (p: string) => data.tests.filter((t) => t.path === p);
    expect(byPath('rdma_failover.UL-RPING-01.rping').map((t) => [t.status, t.waived])).to.deep.equal(report.environment.map(() => ['FAIL', true]));
    expect(byPath('rdma_failover.UL-RDS-01.rds').every((t) => t.status === 'PASS')).to.equal(true);
    expect(data.tests.filter((t) => t.status === 'SKIP').length).to.equal(2 * report.environment.length);
  });

  it('the outage figure is a number with a unit, the node environment is in misc', () => {
    const rds = data.tests.find((t) => t.path === 'rdma_failover.UL-RDS-01.rds')!;
    expect(rds.number).to.have.property('unit', 'ms');
    expect((rds.number as { value: number }).value).to.be.a('number');
    expect((rds.environment as { misc: { node: string } }).misc.node).to.be.oneOf(report.environment.map((e) => e.node));
  });

  it('what KCIDB refuses is caught: a bad origin, an id without it, a status it does not know', () => {
    expect(() => toKcidb(report, 'Bad-Origin')).to.throw(/\[a-z0-9_\]\+/);
    const broken = { ...data, tests: [{ ...data.tests[0]!, id: 'no-origin', status: 'KNOWN' }] };
    expect(kcidbErrors(broken).join('\n')).to.match(/\/tests\/0\/id must match pattern[\s\S]*\/tests\/0\/status must be equal to one of the allowed values/);
    expect(kcidbErrors({ version: { major: 4 } }).join('\n')).to.match(/major must be equal to constant/);
  });
});
