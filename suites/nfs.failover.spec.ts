// UL-NFS-01 — NFS over RDMA: nfsd's RDMA listener (port 20049), a hard proto=rdma mount, fio with
// verification on a file while links fail. The RPC transport reconnects on the next RPC.
import { suite, test } from '../harness/fixture/test.ts';
import { NfsWorkload } from '../harness/workload/nfs.ts';
import * as storage from './lib/storage.ts';
import { nfs as nfsUlp } from '../harness/ulp/nfs.ts';

const nfs = storage.storageUlp({
  ulp: 'nfs',
  roles: ['client', 'server'],
  sides: ['client', 'server'],
  step: 8 * 2 ** 20,
  make: (t, client, server) => {
    const w = t.topology.workloads?.nfs;
    return new NfsWorkload(t.lab, { client, server, ...(w?.size_mib ? { sizeMiB: w.size_mib } : {}), exportSizeMiB: w?.export_size_mib ?? 160 }).setup();
  },
  // A soft mount whose three tries (timeo, 2×timeo, 3×timeo) add up to the give-up time.
  makeGivingUp: (t, client, server, giveUpS) => {
    const w = t.topology.workloads?.nfs;
    return new NfsWorkload(t.lab, { client, server, ...(w?.size_mib ? { sizeMiB: w.size_mib } : {}), exportSizeMiB: w?.export_size_mib ?? 160, softRetrans: 2, timeoDs: Math.max(1, Math.round((giveUpS * 10) / 6)) }).setup();
  },
  // An RPC that times out (timeo, 60 s by default) makes xprtrdma drop the connection
  // (transport.c xprt_rdma_timer → xprt_force_disconnect): rdma_disconnect on the client's id.
  liveness: nfsUlp.liveness,
});

suite('UL-NFS-01 NFS over RDMA survives the loss of the active link', { requires: { nodes: 2, modules: ['rpcrdma', 'nfsd'], tools: ['rpc.nfsd', 'mount.nfs', 'fio'], capabilities: ['carrier'] } }, () => {
  test('UL-NFS-01 baseline: verified I/O with no fault', { tags: ['full'] }, storage.baseline(nfs));
  test("UL-NFS-01 carrier loss on the client's active slave during I/O: back through the new slave within budget, data verified", { tags: ['quick'] }, storage.failover(nfs, 'client'));
  test("RF-07 carrier loss on the server's active slave during I/O: the client reconnects within budget, data verified", { tags: ['full'] }, storage.failover(nfs, 'server'));
  test('RF-02 failback to the primary during NFS I/O: a failover each way, I/O recovers both times', { tags: ['full'] }, storage.failback(nfs));
  test('RF-01 five flaps of the active slave during NFS I/O: no data error, no leak, no kernel warning', { tags: ['long'] }, storage.flapping(nfs));
  test('RF-03 both links down for less than the give-up time: NFS I/O stalls, then resumes with no errors', { tags: ['full'] }, storage.bothDownShort(nfs));
  test('RF-03 both links down for longer than a soft mount gives up: NFS fails cleanly (EIO) in bounded time, and mounts again once the links return', { tags: ['long'], timeoutMs: storage.TWO_SETUPS_MS, allowKernel: storage.LONG_OUTAGE_ALLOW_KERNEL }, storage.bothDownLong(nfs));
  test('RF-04 a failover while the client mounts: it mounts (or fails cleanly and a retry succeeds), then verified I/O', { tags: ['full'], timeoutMs: storage.TWO_SETUPS_MS }, storage.duringConnect(nfs));
  test('RF-05 a failover during umount: it completes and leaks nothing', { tags: ['full'] }, storage.duringTeardown(nfs));
  test("RF-06 carrier drops shorter than miimon on the client's active slave: no failover storm, no spurious ADDR_CHANGE, I/O verified", { tags: ['full'] }, storage.shortFlaps(nfs));
  test('RF-08 no gratuitous ARP (num_grat_arp=0): NFS comes back within the no-GARP bound, time recorded', { tags: ['full'] }, storage.noGratuitousArp(nfs));
  test("RF-09 silent path death (the client's switch port down, carrier up): the RPC timeout drops the connection within 70 s, I/O resumes when the port returns", { tags: ['long'], requires: { capabilities: ['switchPorts'] } }, storage.silentPathDeath(nfs));
});
