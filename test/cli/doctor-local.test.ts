import { expect } from 'chai';
import { cli } from '../support/cli.ts';

// This machine's own kernel has no loadable modules (no bonding, no RDMA): the doctor must say so,
// with the fix, and fail. A doctor that passed here would be lying.
describe('rdma-failover doctor on this machine (the binary)', function () {
  this.timeout(60_000);

  it('reports the missing kernel modules and exits non-zero', async () => {
    const r = await cli(['doctor', 'topologies/local.yaml']);
    expect(r.code).to.equal(1);
    expect(r.stdout).to.match(/✖ module bonding: not available in this kernel/);
    expect(r.stdout).to.include('fix:');
    expect(r.stdout).to.match(/not ready: .*localhost: module bonding/);
  });

  it('--json reports tools, kernel and clock as data', async () => {
    const r = await cli(['doctor', '--json', 'topologies/local.yaml']);
    const j = JSON.parse(r.stdout) as { ok: boolean; nodes: { kernel: string; checks: { id: string; status: string }[]; clock?: { boundMs: number } }[] };
    expect(j.ok).to.equal(false);
    const n = j.nodes[0]!;
    expect(n.kernel).to.match(/^\d+\.\d+/);
    expect(n.checks.find((c) => c.id === 'tool:ip')?.status).to.equal('ok');
    expect(n.clock?.boundMs).to.be.a('number');
  });
});
