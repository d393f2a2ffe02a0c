// UL-NFS-01 — NFS over RDMA: nfsd's RDMA listener (port 20049), a hard proto=rdma mount, fio with
// verification on a file while the active link fails. The RPC transport reconnects on the next RPC.
import { suite } from '../harness/fixture/test.ts';
import { NfsWorkload } from '../harness/workload/nfs.ts';
import { storageTests } from './lib/storage.ts';

suite('UL-NFS-01 NFS over RDMA survives the loss of the active link', { requires: { nodes: 2, modules: ['rpcrdma', 'nfsd'], tools: ['rpc.nfsd', 'mount.nfs', 'fio'], capabilities: ['carrier'] } }, () => {
  storageTests({
    ulp: 'nfs',
    id: 'UL-NFS-01',
    roles: ['client', 'server'],
    sides: ['client', 'server'],
    step: 8 * 2 ** 20,
    make: (t, client, server) => {
      const w = t.topology.workloads?.nfs;
      return new NfsWorkload(t.lab, { client, server, sizeMiB: w?.size_mib ?? 48, exportSizeMiB: w?.export_size_mib ?? 160 }).setup();
    },
  });
});
