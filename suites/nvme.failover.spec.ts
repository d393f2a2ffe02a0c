// UL-NVME-01 — NVMe over Fabrics on RDMA (beyond the brief): nvmet-rdma, `nvme connect
// --reconnect-delay 1`, fio with verification on the namespace while links fail.
// The controller goes resetting → connecting → live through its own reconnect work.
import { suite, test } from '../harness/fixture/test.ts';
import { NvmeWorkload } from '../harness/workload/nvme.ts';
import * as storage from './lib/storage.ts';
import { nvme as nvmeUlp } from '../harness/ulp/nvme.ts';

const nvme = storage.storageUlp({
  ulp: 'nvme',
  roles: ['initiator', 'target'],
  sides: ['host', 'target'],
  step: 8 * 2 ** 20,
  make: (t, host, target) => {
    const w = t.topology.workloads?.nvme;
    return new NvmeWorkload(t.lab, { host, target, ...(w?.size_mib ? { sizeMiB: w.size_mib } : {}), reconnectDelayS: w?.reconnect_delay_s ?? 1, ...(w?.ctrl_loss_tmo_s !== undefined ? { ctrlLossTmoS: w.ctrl_loss_tmo_s } : {}) }).setup();
  },
  // The host gives up after a number of attempts, not a time: max_reconnects =
  // DIV_ROUND_UP(ctrl_loss_tmo, reconnect_delay) (fabrics.c:943, nvmf_should_reconnect line 525),
  // and each attempt during the outage also waits out the address resolution (3 s,
  // NVME_RDMA_CM_TIMEOUT_MS): with reconnect_delay 1 s, ten attempts took 4.1 s each and outlasted
  // a 45 s outage. reconnect_delay = ctrl_loss_tmo makes it one attempt, so the give-up is bounded.
  makeGivingUp: (t, host, target, giveUpS) => new NvmeWorkload(t.lab, { host, target, ...(t.topology.workloads?.nvme?.size_mib ? { sizeMiB: t.topology.workloads.nvme.size_mib } : {}), reconnectDelayS: giveUpS, ctrlLossTmoS: giveUpS }).setup(),
  // The keep-alive (kato 5 s by default) times out on a dead path: the admin command's timeout
  // starts error recovery (host/rdma.c nvme_rdma_timeout).
  liveness: nvmeUlp.liveness,
});

suite('UL-NVME-01 NVMe over RDMA survives the loss of the active link', { requires: { nodes: 2, modules: ['nvme_rdma', 'nvmet_rdma'], tools: ['nvme', 'fio'], capabilities: ['carrier'] } }, () => {
  test('UL-NVME-01 baseline: verified I/O with no fault', { tags: ['full'] }, storage.baseline(nvme));
  test("UL-NVME-01 carrier loss on the host's active slave during I/O: back through the new slave within budget, data verified", { tags: ['quick'] }, storage.failover(nvme, 'client'));
  test("RF-07 carrier loss on the target's active slave during I/O: the host reconnects within budget, data verified", { tags: ['full'] }, storage.failover(nvme, 'server'));
  test('RF-02 failback to the primary during NVMe I/O: a failover each way, I/O recovers both times', { tags: ['full'] }, storage.failback(nvme));
  test('RF-01 five flaps of the active slave during NVMe I/O: no data error, no leak, no kernel warning', { tags: ['long'] }, storage.flapping(nvme));
  test('RF-03 both links down for less than the give-up time: NVMe I/O stalls, then resumes with no errors', { tags: ['full'] }, storage.bothDownShort(nvme));
  test('RF-03 both links down for longer than ctrl_loss_tmo: NVMe fails cleanly in bounded time, and connects again once the links return', { tags: ['long'], timeoutMs: storage.TWO_SETUPS_MS, allowKernel: storage.LONG_OUTAGE_ALLOW_KERNEL }, storage.bothDownLong(nvme));
  test('RF-04 a failover while the host connects: it connects (or fails cleanly and a retry succeeds), then verified I/O', { tags: ['full'], timeoutMs: storage.TWO_SETUPS_MS }, storage.duringConnect(nvme));
  test('RF-05 a failover during disconnect: it completes and leaks nothing', { tags: ['full'] }, storage.duringTeardown(nvme));
  test("RF-06 carrier drops shorter than miimon on the host's active slave: no failover storm, no spurious ADDR_CHANGE, I/O verified", { tags: ['full'] }, storage.shortFlaps(nvme));
  test('RF-08 no gratuitous ARP (num_grat_arp=0): NVMe comes back within the no-GARP bound, time recorded', { tags: ['full'] }, storage.noGratuitousArp(nvme));
  test("RF-09 silent path death (the host's switch port down, carrier up): the keep-alive notices within 15 s, I/O resumes when the port returns", { tags: ['full'], requires: { capabilities: ['switchPorts'] } }, storage.silentPathDeath(nvme));
});
