// UL-ISER-01 — iSER (iSCSI over RDMA): an LIO target, an open-iscsi initiator on an iser iface,
// fio with verification on the disk while links fail. iscsid logs in again by itself;
// replacement_timeout is set above the test window so I/O queues instead of failing.
import { suite, test } from '../harness/fixture/test.ts';
import { IserWorkload } from '../harness/workload/iser.ts';
import * as storage from './lib/storage.ts';
import { iser as iserUlp } from '../harness/ulp/iser.ts';

const iser = storage.storageUlp({
  ulp: 'iser',
  roles: ['initiator', 'target'],
  sides: ['initiator', 'target'],
  step: 8 * 2 ** 20,
  make: (t, initiator, target) => {
    const w = t.topology.workloads?.iser;
    return new IserWorkload(t.lab, { initiator, target, ...(w?.size_mib ? { sizeMiB: w.size_mib } : {}), replacementTimeoutS: w?.replacement_timeout_s ?? 120 }).setup();
  },
  makeGivingUp: (t, initiator, target, giveUpS) => new IserWorkload(t.lab, { initiator, target, ...(t.topology.workloads?.iser?.size_mib ? { sizeMiB: t.topology.workloads.iser.size_mib } : {}), replacementTimeoutS: giveUpS }).setup(),
  // After iser_connect_error the connection is TERMINATING and every task is refused (-ENODEV),
  // the NOP-Out included: libiscsi's ping can no longer find out the connection is dead.
  mustActOnUnreachable:
    'iSER marks the connection TERMINATING without telling libiscsi (iser_verbs.c iser_cma_handler → iser_connect_error), then refuses every task with -ENODEV, the NOP-Out included ("Could not send nopout"): only a NOP-Out already in flight can still time out and start recovery.',
  // open-iscsi's defaults: a NOP-Out after 5 s without traffic, a connection failure 5 s later.
  liveness: iserUlp.liveness,
});

suite('UL-ISER-01 iSER survives the loss of the active link', { requires: { nodes: 2, modules: ['ib_iser', 'ib_isert'], tools: ['iscsiadm', 'fio'], capabilities: ['carrier'], unsupported: iserUlp.unsupported } }, () => {
  test('UL-ISER-01 baseline: verified I/O with no fault', { tags: ['full'] }, storage.baseline(iser));
  test("UL-ISER-01 carrier loss on the initiator's active slave during I/O: back through the new slave within budget, data verified", { tags: ['quick'] }, storage.failover(iser, 'client'));
  test("RF-07 carrier loss on the target's active slave during I/O: the initiator reconnects within budget, data verified", { tags: ['full'] }, storage.failover(iser, 'server'));
  test('RF-02 failback to the primary during iSER I/O: a failover each way, I/O recovers both times', { tags: ['full'] }, storage.failback(iser));
  test('RF-01 five flaps of the active slave during iSER I/O: no data error, no leak, no kernel warning', { tags: ['long'] }, storage.flapping(iser));
  test('RF-03 both links down for less than the give-up time: iSER I/O stalls, then resumes with no errors', { tags: ['full'] }, storage.bothDownShort(iser));
  test('RF-03 both links down for longer than replacement_timeout: iSER fails cleanly in bounded time, and logs in again once the links return', { tags: ['long'], timeoutMs: storage.TWO_SETUPS_MS, allowKernel: storage.LONG_OUTAGE_ALLOW_KERNEL }, storage.bothDownLong(iser));
  test('RF-04 a failover while the initiator logs in: it logs in (or fails cleanly and a retry succeeds), then verified I/O', { tags: ['full'], timeoutMs: storage.TWO_SETUPS_MS }, storage.duringConnect(iser));
  test('RF-05 a failover during logout: it completes and leaks nothing', { tags: ['full'] }, storage.duringTeardown(iser));
  test("RF-06 carrier drops shorter than miimon on the initiator's active slave: no failover storm, no spurious ADDR_CHANGE, I/O verified", { tags: ['full'] }, storage.shortFlaps(iser));
  test('RF-08 no gratuitous ARP (num_grat_arp=0): iSER comes back within the no-GARP bound, time recorded', { tags: ['full'] }, storage.noGratuitousArp(iser));
  test("RF-09 silent path death (the initiator's switch port down, carrier up): the NOP-Out notices within 12 s, I/O resumes when the port returns", { tags: ['full'], requires: { capabilities: ['switchPorts'] } }, storage.silentPathDeath(iser));
});
