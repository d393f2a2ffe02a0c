// `rdma-failover verdicts` (the binary): the exit status a nightly job or a certification's
// reproducibility check reads, with the shipped known-issues file telling intermittent issues apart.
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunReport } from '../../harness/report/schema.ts';
import { cli } from '../support/cli.ts';

describe('rdma-failover verdicts (the binary)', function () {
  this.timeout(60_000);
  const dir = mkdtempSync(join(tmpdir(), 'rf-verdicts-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, status?: RunReport['tests'][number]['status'], known?: string): string => {
    const r = JSON.parse(readFileSync('test/fixtures/reports/vm-run.report.json', 'utf8')) as RunReport;
    const t = r.tests.find((x) => x.planId === 'UL-RDS-01')!;
    if (status) t.status = status;
    if (known) t.knownFailure = { id: known, reference: 'r', summary: 's', source: 'known-issues.yaml', observed: 'o' };
    const f = join(dir, `${name}.json`);
    writeFileSync(f, JSON.stringify(r));
    return f;
  };

  it('exit 0 when every verdict reproduced, 1 when one changed, 3 when only an intermittent known issue (shipped file) differs', async () => {
    const same = await cli(['verdicts', write('a'), write('b'), write('c')]);
    expect(same.code, same.stderr).to.equal(0);
    expect(same.stdout).to.include('6 of 6 tests: the same verdict in all 3 runs');
    const changed = await cli(['verdicts', write('d'), write('e', 'failed')]);
    expect(changed.code, changed.stderr).to.equal(1);
    expect(changed.stdout).to.match(/CHANGED +UL-RDS-01/);
    const intermittent = await cli(['verdicts', write('f'), write('g', 'known-failure', 'rxe-gsi-qp-deaf-after-outage')]);
    expect(intermittent.code, intermittent.stdout + intermittent.stderr).to.equal(3);
    expect(intermittent.stdout).to.include('INTERMITTENT UL-RDS-01');
  });
});
