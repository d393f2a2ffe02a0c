// Where the "through the new slave" traffic count starts (fixture/test.ts failoverAfter): at the
// faulted bond's failover, not at the fault — until the guest sees a carrier loss the old slave
// still transmits (147 ms in UL-RDS-01 at 5d05e8a, 78 KB of RDS on it, which failed the check).
import { expect } from 'chai';
import { failoverAfter } from '../../harness/fixture/test.ts';
import type { BondEvent, LabEvent } from '../../harness/monitor/events.ts';

const bond = (t: number, node: string, active: string, changed: BondEvent['changed'], b = 'bond0'): BondEvent => ({ source: 'bond', t, node, bond: b, activeSlave: active, address: '', miiStatus: 'up', carriers: {}, changed, raw: '' });

describe('the slave counters start at the failover', () => {
  const fault = { t: 1000, node: 'node-a', bond: 'bond0', before: { activeSlave: 'eth0', address: '' } };

  it('the first active-slave change of the faulted bond after the fault, not a carrier change before it or another node\'s', () => {
    const events: LabEvent[] = [
      bond(900, 'node-a', 'eth0', ['active_slave']), // before the fault (an earlier test's failback)
      bond(1147, 'node-a', 'eth0', ['carrier:eth0']),
      bond(1150, 'node-b', 'eth1', ['active_slave']),
      bond(1250, 'node-a', 'eth0', ['active_slave']), // the failback later on
      bond(1172, 'node-a', 'eth1', ['active_slave', 'address']),
      bond(1180, 'node-a', 'eth1', ['active_slave'], 'bond1'),
    ];
    expect(failoverAfter(events, fault, 5)).to.equal(1172);
  });

  it('a change within the clock\'s error bound before the fault counts (a forced switch is seen at once); none, none', () => {
    expect(failoverAfter([bond(997, 'node-a', 'eth1', ['active_slave'])], fault, 5)).to.equal(997);
    expect(failoverAfter([bond(990, 'node-a', 'eth1', ['active_slave'])], fault, 5)).to.equal(undefined);
    expect(failoverAfter([bond(1100, 'node-a', 'eth0', ['carrier:eth0'])], fault, 5), 'no failover seen: the caller counts from the fault').to.equal(undefined);
    // as the timeline reads a failover: no slave active (both links down) is not one, nor the old slave again
    expect(failoverAfter([bond(1100, 'node-a', '', ['active_slave']), bond(1300, 'node-a', 'eth0', ['active_slave']), bond(1400, 'node-a', 'eth1', ['active_slave'])], fault, 5)).to.equal(1400);
  });
});
