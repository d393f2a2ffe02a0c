// NFS over RDMA: nfsd's RDMA listener (svcrdma) and a proto=rdma mount (xprtrdma).
import { defineUlp } from './ulp.ts';

export const nfs = defineUlp({
  name: 'nfs',
  title: 'NFS/RDMA',
  planId: 'UL-NFS-01',
  reconnectBudgetMs: 30_000,
  workloadSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      server: { type: 'string' },
      client: { type: 'string' },
      size_mib: { type: 'integer', minimum: 1 },
      export_size_mib: { type: 'integer', minimum: 16 },
    },
  },
  nodeFields: ['server', 'client'],
  kmsgClasses: [['rpcrdma', /rpcrdma|xprtrdma|svcrdma|\bnfs: |\bNFS: |lockd/]],
  modules: [
    { name: 'rpcrdma', neededBy: 'client and server' },
    { name: 'nfsd', neededBy: 'server' },
  ],
  tools: [
    { name: 'rpc.nfsd', pkg: 'nfs-kernel-server', neededBy: 'server' },
    { name: 'mount.nfs', pkg: 'nfs-common', neededBy: 'client' },
    { name: 'fio', pkg: 'fio', neededBy: 'client (verified I/O)' },
  ],
  stackPattern: /rpcrdma|xprt|svc_rdma|nfs|sunrpc|rpc_/,
  liveness: {
    timer: 'the RPC timeout (timeo=600: 60 s)',
    boundMs: 70_000,
    fired: (e, serverIp) => e.source === 'cma' && e.point === 'cm_disconnect' && (e.dst ?? '').startsWith(`${serverIp}:20049`),
    shows: 'rdma_disconnect of the client’s connection (rdma_cma trace)',
  },
} as const);
