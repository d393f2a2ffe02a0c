// RF-03 long iSER at acc2d95: the known panic (iser-completion-after-unbind) killed node-a, so the
// teardown could not reach it — and those errors turned the KNOWN verdict into a FAIL. Only errors
// that concern nodes the health check found unresponsive are left to the VM lab's reboot.
import { expect } from 'chai';
import { teardownLeftToReboot } from '../../harness/fixture/teardown.ts';
import type { HealthFinding } from '../../harness/health/health.ts';

const NODES = ['node-a', 'node-b'];
const dead: HealthFinding[] = [{ node: 'node-a', kind: 'unresponsive', detail: 'no answer within 15000 ms', evidence: [] }];
// recorded (the run at acc2d95)
const HEAL = 'teardown of heal: both links of node-a/bond0 down for 45000 ms failed: timed out after 60000 ms waiting for node-a/eth0: carrier back after the heal; last error: node-a (root@127.0.0.1:36625): cannot connect: no SSH handshake within 20000 ms';
const UNDO = 'teardown of iser failed: iser: could not undo: node-a: log out of iqn.2024-01.lab.test:rf-iser and delete its node record: node-a (root@127.0.0.1:36625): cannot connect: no SSH handshake within 20000 ms';

describe('teardown errors left to the reboot of a dead VM node', () => {
  it('the errors that name only the unresponsive node', () => {
    expect(teardownLeftToReboot([HEAL, UNDO], dead, NODES)).to.deep.equal([HEAL, UNDO]);
  });

  it('not an error that names a node that answers, nor one that names no node', () => {
    const target = 'teardown of iser failed: iser: could not undo: node-b: remove the iSER target iqn.2024-01.lab.test:rf-iser: exit 1';
    const both = 'teardown of heal failed: node-a/eth0 and node-b/eth1 still down';
    expect(teardownLeftToReboot([target, both, 'the monitors could not be stopped'], dead, NODES)).to.deep.equal([]);
  });

  it('nothing when no node was found unresponsive (a kernel-log finding alone does not excuse it)', () => {
    expect(teardownLeftToReboot([HEAL], [{ node: 'node-a', kind: 'kernel-log', detail: 'oops', evidence: [] }], NODES)).to.deep.equal([]);
  });

  it('a node name is matched whole: node-a does not stand for node-ab', () => {
    expect(teardownLeftToReboot(['node-ab: cannot connect'], dead, [...NODES, 'node-ab'])).to.deep.equal([]);
  });
});
