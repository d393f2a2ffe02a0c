// RF-03's outage: the links go in one command with the active slave last, so a miimon tick between
// the guest's carrier changes finds no slave to fail over to; and an outage that still was not "all
// at once" is named (notAtOnce), so RF-03 fails instead of judging another path. A stand-in lab
// records the order of the cut.
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BothDown } from '../../harness/fault/fault.ts';
import type { Lab } from '../../harness/lab/lab.ts';
import type { KmsgEvent } from '../../harness/monitor/events.ts';
import { notAtOnce } from '../../suites/lib/outage.ts';

function standIn(): { lab: Lab; cuts: string[][] } {
  const cuts: string[][] = [];
  const lab = {
    loaded: { topology: { name: `both-down-unit-${process.pid}` } },
    carrier: {
      method: 'stand-in',
      cutTogether: (_n: string, ifnames: string[]) => {
        cuts.push([...ifnames]);
        return Promise.resolve();
      },
    },
  } as unknown as Lab;
  return { lab, cuts };
}

const kmsg = (t: number, text: string): KmsgEvent => ({ source: 'kmsg', node: 'node-a', t, level: 6, kernelTs: t / 1000, text, cls: 'info' as KmsgEvent['cls'] });

describe('both links down (RF-03)', () => {
  let dir: string;
  let cache: string | undefined;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'rf-both-down-'));
    cache = process.env.RDMA_FAILOVER_CACHE;
    process.env.RDMA_FAILOVER_CACHE = dir; // the heal journal goes here, not into a lab's
  });
  after(() => {
    if (cache === undefined) delete process.env.RDMA_FAILOVER_CACHE;
    else process.env.RDMA_FAILOVER_CACHE = cache;
    rmSync(dir, { recursive: true, force: true });
  });

  for (const active of ['eth0', 'eth1']) {
    it(`cuts the active slave (${active}) last, in one command`, async () => {
      const s = standIn();
      await new BothDown('node-a', 'bond0', ['eth0', 'eth1'], 1000).inject({ lab: s.lab, record: () => undefined, activeSlave: () => Promise.resolve(active) });
      expect(s.cuts).to.have.length(1);
      expect(s.cuts[0]!.at(-1)).to.equal(active);
      expect([...s.cuts[0]!].sort()).to.deep.equal(['eth0', 'eth1']);
    });
  }

  it('names an outage that failed the bond over on the way down (full run Z1 at bd0bfbf, as logged), and passes one that did not', () => {
    const z1 = [
      kmsg(34, 'bond0: (slave eth0): link status definitely down, disabling slave'),
      kmsg(34, 'bond0: (slave eth1): making interface the new active one'),
      kmsg(169, 'bond0: (slave eth1): link status definitely down, disabling slave'),
      kmsg(169, 'bond0: now running without any active interface!'),
    ];
    expect(notAtOnce(z1, 'node-a').join('\n')).to.match(/failed over before it lost both slaves: bond0: \(slave eth1\): making interface/);
    const atOnce = [
      kmsg(93, 'bond0: (slave eth0): link status definitely down, disabling slave'),
      kmsg(94, 'bond0: (slave eth1): link status definitely down, disabling slave'),
      kmsg(96, 'bond0: now running without any active interface!'),
    ];
    expect(notAtOnce(atOnce, 'node-a')).to.deep.equal([]);
    expect(notAtOnce(atOnce, 'node-b'), "another node's log is not this outage").to.deep.equal(['the bond never saw both slaves go']);
    expect(notAtOnce(atOnce.slice(0, 1), 'node-a'), 'one slave lost, the other still up').to.deep.equal(['the bond never saw both slaves go']);
  });
});
