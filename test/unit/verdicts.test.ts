// Do verdicts reproduce across runs (`rdma-failover verdicts`): on the recorded VM report, changed
// on purpose in each way a run can differ.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import type { RunReport } from '../../harness/report/schema.ts';
import { renderVerdicts, verdictsExitCode, verdictTable } from '../../harness/report/verdicts.ts';

const base = JSON.parse(readFileSync('test/fixtures/reports/vm-run.report.json', 'utf8')) as RunReport;
const copy = (id: string, change: (r: RunReport) => void = () => undefined): RunReport => {
  const r = JSON.parse(JSON.stringify(base)) as RunReport;
  r.run.id = id;
  change(r);
  return r;
};
const rds = (r: RunReport) => r.tests.find((t) => t.planId === 'UL-RDS-01')!;
const knownBy = (id: string) => (r: RunReport) => {
  const t = rds(r);
  t.status = 'known-failure';
  t.knownFailure = { id, reference: 'ref', summary: 's', source: 'known-issues.yaml:1', observed: 'o' };
};
const INTERMITTENT = new Set(['rxe-gsi-qp-deaf-after-outage']);

describe('verdicts across runs', () => {
  it('three identical runs: every verdict reproduced, exit 0, the summary line of each run', () => {
    const t = verdictTable([copy('r1'), copy('r2'), copy('r3')], INTERMITTENT);
    expect(t.identical).to.equal(t.rows.length);
    expect(verdictsExitCode(t)).to.equal(0);
    const text = renderVerdicts(t);
    expect(text).to.include('run 3: r3 (debian-stable:6.1.0-56-amd64, harness 9694dfe3a1b1) — 3 passed · 0 failed · 1 known · 2 skipped · 6 tests');
    expect(text).to.include('every verdict reproduced');
    expect(t.setupDiffers).to.deep.equal([]);
    expect(text).to.not.include('NOT REPEATS');
  });

  it('a pass that became a FAIL is a change: exit 1, both verdicts shown', () => {
    const t = verdictTable([copy('r1'), copy('r2', (r) => void (rds(r).status = 'failed'))], INTERMITTENT);
    expect(verdictsExitCode(t)).to.equal(1);
    expect(t.differing.map((r) => [r.key.slice(0, 9), r.verdicts, r.intermittent])).to.deep.equal([['UL-RDS-01', ['passed', 'failed'], false]]);
    expect(renderVerdicts(t)).to.match(/CHANGED +UL-RDS-01[\s\S]*run 1: passed · run 2: failed[\s\S]*1 test\(s\) changed verdict/);
  });

  it('a pass in one run and an intermittent known issue in another: told apart, never identical (exit 3)', () => {
    const t = verdictTable([copy('r1'), copy('r2', knownBy('rxe-gsi-qp-deaf-after-outage')), copy('r3')], INTERMITTENT);
    expect(t.identical).to.equal(t.rows.length - 1);
    expect(t.differing[0]!.intermittent).to.equal(true);
    expect(verdictsExitCode(t)).to.equal(3);
    expect(renderVerdicts(t)).to.include('INTERMITTENT UL-RDS-01');
  });

  it('a known issue that is not intermittent, two different known issues, a test missing from a run: changes', () => {
    expect(verdictsExitCode(verdictTable([copy('r1'), copy('r2', knownBy('rping-ignores-addr-change'))], INTERMITTENT))).to.equal(1);
    const two = verdictTable([copy('r1', knownBy('rxe-gsi-qp-deaf-after-outage')), copy('r2', knownBy('rxe-gsi-qp-deaf-after-send-error'))], new Set([...INTERMITTENT, 'rxe-gsi-qp-deaf-after-send-error']));
    expect(verdictsExitCode(two)).to.equal(1);
    const missing = verdictTable([copy('r1'), copy('r2', (r) => void (r.tests = r.tests.filter((t) => t.planId !== 'UL-RDS-01')))], INTERMITTENT);
    expect(missing.differing.map((r) => r.verdicts)).to.deep.equal([['passed', undefined]]);
    expect(verdictsExitCode(missing)).to.equal(1);
    expect(renderVerdicts(missing)).to.include('run 2: not run');
  });

  it('runs of different set-ups (harness commit, topology, kernel) are compared, and said to be no repeats', () => {
    const t = verdictTable([copy('r1'), copy('r2', (r) => void (r.run.gitCommit = 'b9e8e8f00000')), copy('r3', (r) => void (r.run.topology!.sha256 = 'f'.repeat(64)))], INTERMITTENT);
    expect(verdictsExitCode(t), 'the verdicts themselves reproduced').to.equal(0);
    expect(t.setupDiffers).to.deep.equal(['harness commit: run 1 9694dfe3a1b1 · run 2 b9e8e8f00000 · run 3 9694dfe3a1b1', 'topology: run 1 vm-rxe@4fd9d9cdcdd8 · run 2 vm-rxe@4fd9d9cdcdd8 · run 3 vm-rxe@ffffffffffff']);
    expect(renderVerdicts(t)).to.match(/NOT REPEATS OF ONE SET-UP[\s\S]*harness commit: run 1 9694dfe3a1b1 · run 2 b9e8e8f00000/);
    const kernels = verdictTable([copy('r1'), copy('r2', (r) => void (r.run.kernel = 'debian-backports:6.12.95+deb12-amd64'))], INTERMITTENT);
    expect(kernels.setupDiffers).to.deep.equal(['guest kernel: run 1 debian-stable:6.1.0-56-amd64 · run 2 debian-backports:6.12.95+deb12-amd64']);
  });
});
