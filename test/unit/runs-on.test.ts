// runsOnSince: the wait that paces a test after a fault (TestContext.bondRunsOn). It must not be
// satisfied by the bond's state before the fault, by another bond, or by a switch already undone.
import { expect } from 'chai';
import { runsOnSince } from '../../harness/assert/chai-failover.ts';
import type { BondEvent, LabEvent } from '../../harness/monitor/events.ts';

const bondEv = (t: number, activeSlave: string, bond = 'bond0'): LabEvent => ({ source: 'bond', t, node: 'a', bond, activeSlave, address: '', miiStatus: 'up', carriers: {}, changed: ['active_slave'] as BondEvent['changed'] });
const kmsg = (t: number, text: string): LabEvent => ({ source: 'kmsg', t, node: 'a', kernelTs: t / 1000, level: 6, cls: 'bonding', text });

describe('runsOnSince (a step after a fault waits for the switch)', () => {
  it('the state from before the fault does not count: eth1 active before since, nothing after', () => {
    expect(runsOnSince([bondEv(0, 'eth1')], 'a', 'bond0', 'eth1', 1000)).to.equal(undefined);
  });

  it('the bonding driver\'s line after the fault counts, before the poller sees it', () => {
    const ev = [bondEv(0, 'eth0'), kmsg(1090, 'bond0: (slave eth1): making interface the new active one')];
    expect(runsOnSince(ev, 'a', 'bond0', 'eth1', 1000)).to.equal(1090);
    expect(runsOnSince(ev, 'a', 'bond0', 'eth0', 1000), 'not the slave it left').to.equal(undefined);
  });

  it('the poller after the fault counts; the first time seen is returned', () => {
    expect(runsOnSince([bondEv(0, 'eth0'), bondEv(1100, 'eth1'), kmsg(1200, 'unrelated')], 'a', 'bond0', 'eth1', 1000)).to.equal(1100);
  });

  it('a switch already undone (back on eth0 by now) does not count', () => {
    const ev = [bondEv(1100, 'eth1'), kmsg(1300, 'bond0: (slave eth0): making interface the new active one')];
    expect(runsOnSince(ev, 'a', 'bond0', 'eth1', 1000)).to.equal(undefined);
  });

  it('another node or another bond does not count', () => {
    expect(runsOnSince([bondEv(1100, 'eth1', 'bond1')], 'a', 'bond0', 'eth1', 1000)).to.equal(undefined);
    expect(runsOnSince([{ ...bondEv(1100, 'eth1'), node: 'b' }], 'a', 'bond0', 'eth1', 1000)).to.equal(undefined);
  });
});
