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
import { notAtOnce, outageLines, outageMark } from '../../suites/lib/outage.ts';

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

const kmsg = (t: number, text: string, kernelMs = t): KmsgEvent => ({ source: 'kmsg', node: 'node-a', t, level: 6, kernelTs: kernelMs / 1000, text, cls: 'info' as KmsgEvent['cls'] });

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

  // The outage's lines are the kernel's between the harness's two marks, whatever the controller's
  // clock says. CI at 3719d24 refused two RF-03 outages for a "new active one" line inside a window
  // on the controller's clock, whose end came from Date.now() while events are on now()'s axis;
  // where the line stood in the kernel's order was never looked at.
  it("takes the outage's lines between its marks in the kernel's order, not by the controller's clock", () => {
    const id = '42-1';
    const log = [
      kmsg(-1500, 'bond0: (slave eth0): making interface the new active one', 100), // onReturnSlave, before the cut
      kmsg(-5, outageMark(id, 'cut'), 1600),
      kmsg(30, 'bond0: (slave eth0): link status definitely down, disabling slave', 1630),
      kmsg(30, 'bond0: (slave eth1): link status definitely down, disabling slave', 1630.2),
      kmsg(31, 'bond0: now running without any active interface!', 1631),
      kmsg(3000, outageMark(id, 'heal'), 4600),
      // the heal's failover, mapped 40 ms early on the controller's clock: still after the heal mark
      kmsg(2960, 'bond0: (slave eth0): making interface the new active one', 4620),
    ];
    const lines = outageLines(log, 'node-a', id)!;
    expect(lines.map((e) => e.text)).to.deep.equal([log[2]!.text, log[3]!.text, log[4]!.text]);
    expect(notAtOnce(lines, 'node-a')).to.deep.equal([]);
    // the same log judged on the controller's clock up to the heal (3000) counts the heal's line
    expect(notAtOnce(log.filter((e) => e.t >= 0 && e.t < 3000), 'node-a').join()).to.match(/failed over before/);
    // a failover inside the marks is found, a mark of another outage is not these marks
    const failedOver = [...log.slice(0, 3), kmsg(31, 'bond0: (slave eth1): making interface the new active one', 1630.1), ...log.slice(3)];
    expect(notAtOnce(outageLines(failedOver, 'node-a', id)!, 'node-a').join()).to.match(/failed over before it lost both slaves: bond0: \(slave eth1\)/);
    expect(outageLines(log, 'node-a', '42-2'), 'no marks of this outage').to.equal(undefined);
    expect(outageLines(log.filter((e) => e.text !== outageMark(id, 'heal')), 'node-a', id), 'a lost heal mark').to.equal(undefined);
    expect(outageLines(log, 'node-b', id), "another node's log").to.equal(undefined);
  });
});
