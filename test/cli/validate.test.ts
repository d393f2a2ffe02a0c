import { expect } from 'chai';
import { cli } from '../support/cli.ts';

describe('rdma-failover validate (the binary)', function () {
  this.timeout(60_000);

  it('accepts the shipped topologies with exit 0', async () => {
    const r = await cli(['validate', 'topologies/vm-rxe.yaml', 'topologies/ib-2node.yaml', 'topologies/roce-2node.yaml']);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.include('topologies/vm-rxe.yaml: ok');
  });

  it('prints file:line:col errors and exits 1', async () => {
    const r = await cli(['validate', 'test/fixtures/topologies/bad/05-mixed-slave-types.yaml']);
    expect(r.code).to.equal(1);
    expect(r.stdout).to.match(/05-mixed-slave-types\.yaml:18:19: error: .*slaves of mixed link types/);
  });

  it('explains why fail_over_mac=none never raises ADDR_CHANGE; --strict turns warnings into failure', async () => {
    const f = 'test/fixtures/topologies/warn/01-fail-over-mac-none.yaml';
    const r = await cli(['validate', f]);
    expect(r.code).to.equal(0);
    expect(r.stdout).to.include('never sends RDMA_CM_EVENT_ADDR_CHANGE');
    expect((await cli(['validate', '--strict', f])).code).to.equal(1);
  });

  it('--json gives machine-readable findings', async () => {
    const r = await cli(['validate', '--json', 'test/fixtures/topologies/bad/07-unknown-node-ref.yaml']);
    const j = JSON.parse(r.stdout) as { errors: number; issues: { line: number; col: number; message: string }[] };
    expect(j.errors).to.equal(1);
    expect(j.issues[0]).to.include({ line: 13, col: 13 });
  });
});
