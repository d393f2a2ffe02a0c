// Several VM labs on one controller: a second lab beside the default one touches nothing of it (a
// carrier cut in one is invisible in the other), and `run --labs 2` spreads the tests over two
// labs of its own and merges their reports into one.
import { expect } from 'chai';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli } from '../support/cli.ts';
import { netnsList } from '../support/lab.ts';
import { combinedExit, labCopies } from '../../harness/run/labs.ts';
import { loadTopology } from '../../harness/topology/load.ts';
import { labIdFor } from '../../harness/vmlab/vm-lab.ts';
import type { RunReport } from '../../harness/report/schema.ts';

const carrier = async (topology: string, node: string, nic: string) => (await cli(['lab', 'ssh', '-t', topology, node, '--', 'cat', `/sys/class/net/${nic}/carrier`])).stdout.trim();

/** The carrier once it reads `want`, or what it reads after 10 s. */
async function waitCarrier(topology: string, node: string, nic: string, want: string): Promise<string> {
  let got = '';
  for (let i = 0; i < 20 && got !== want; i++) {
    if (i) await new Promise((r) => setTimeout(r, 500));
    got = await carrier(topology, node, nic);
  }
  return got;
}

describe('several VM labs on one controller', function () {
  this.timeout(1_800_000);

  it('the copies of a topology are the same lab under other names (and a real topology is refused)', () => {
    const [a, b] = labCopies('topologies/vm-rxe.yaml', 2);
    const ta = loadTopology(a!).topology;
    const tb = loadTopology(b!).topology;
    expect([ta.name, tb.name]).to.deep.equal(['vm-rxe-1', 'vm-rxe-2']);
    expect(labIdFor(ta.name)).to.not.equal(labIdFor(tb.name));
    expect({ ...ta, name: '' }).to.deep.equal({ ...tb, name: '' });
    expect(() => labCopies('topologies/ib-2node.yaml', 2)).to.throw(/boots VM labs/);
    expect([combinedExit([0, 3]), combinedExit([3, 1]), combinedExit([0, 130]), combinedExit([0, 0])]).to.deep.equal([3, 1, 130, 0]);
  });

  it('a second lab beside the default one: its own namespace, ports and guests; a carrier cut in it is invisible in the other', async () => {
    const second = labCopies('topologies/vm-rxe.yaml', 2)[1]!;
    const up = await cli(['lab', 'up', second], { timeoutMs: 300_000 });
    try {
      expect(up.code, up.stderr).to.equal(0);
      expect(netnsList()).to.include.members(['rf-vm-rxe', 'rf-vm-rxe-2']);
      const s1 = (await cli(['lab', 'status', '--json'])).stdout;
      const s2 = (await cli(['lab', 'status', '--json', second])).stdout;
      const ports = (s: string) => (JSON.parse(s) as { guests: { sshPort: number }[] }).guests.map((g) => g.sshPort);
      expect(ports(s1)).to.not.have.members(ports(s2));
      // carrier is readable on an interface that is up (a NIC reports link a moment after that)
      for (const topo of [second, 'topologies/vm-rxe.yaml']) {
        await cli(['lab', 'ssh', '-t', topo, 'node-a', '--', 'ip', 'link', 'set', 'dev', 'eth0', 'up']);
        expect(await waitCarrier(topo, 'node-a', 'eth0', '1'), `${topo}: eth0 up`).to.equal('1');
      }
      const cut = await cli(['lab', 'link', '-t', second, 'node-a', 'eth0', 'down']);
      expect(cut.code, cut.stderr).to.equal(0);
      expect(await waitCarrier(second, 'node-a', 'eth0', '0'), 'the cut lab').to.equal('0');
      expect(await carrier('topologies/vm-rxe.yaml', 'node-a', 'eth0'), 'the other lab').to.equal('1');
      expect((await cli(['lab', 'link', '-t', second, 'node-a', 'eth0', 'up'])).code).to.equal(0);
    } finally {
      await cli(['lab', 'down', second], { timeoutMs: 120_000 });
    }
    expect(netnsList()).to.include('rf-vm-rxe').and.not.include('rf-vm-rxe-2');
  });

  it('run --labs 2: each lab runs its shard, one merged report holds every selected test with the lab it ran on', async () => {
    const reports = mkdtempSync(join(tmpdir(), 'rf-labs-'));
    try {
      const r = await cli(['run', '--labs', '2', '--reports', reports, 'rds.failover', '--grep', 'UL-RDS-01 carrier loss|RF-06'], { timeoutMs: 1_500_000, env: { RDMA_FAILOVER_PDF: '0', RDMA_FAILOVER_TAGS: '', RDMA_FAILOVER_EXCLUDE_TAGS: '' } });
      expect(r.stdout, r.stderr.slice(-2000)).to.match(/2 VM labs: vm-rxe-1, vm-rxe-2/);
      const dir = readdirSync(reports).find((d) => d.startsWith('merged-'))!;
      const m = JSON.parse(readFileSync(join(reports, dir, 'report.json'), 'utf8')) as RunReport;
      expect(m.tests.map((t) => t.planId).sort()).to.deep.equal(['RF-06', 'UL-RDS-01']);
      for (const t of m.tests) expect(t.provenance?.lab).to.be.oneOf(['vm-rxe-1', 'vm-rxe-2']);
      expect(m.run.merged!.length).to.be.at.least(1);
      // the run as a whole: the topology the user gave and one guest kernel (`verdicts` compares both)
      expect(m.run.topology?.name).to.equal('vm-rxe');
      expect(m.run.topology?.file).to.match(/topologies\/vm-rxe\.yaml$/);
      expect(m.run.kernel).to.match(/^debian-stable:/);
      expect(netnsList(), 'both labs taken down after the run').to.not.include.members(['rf-vm-rxe-1']).and.not.include('rf-vm-rxe-2');
      process.stdout.write(`      measured: ${m.tests.map((t) => `${t.planId} on ${t.provenance?.lab}: ${t.status}`).join('; ')} (exit ${r.code})\n`);
    } finally {
      rmSync(reports, { recursive: true, force: true });
    }
  });
});
