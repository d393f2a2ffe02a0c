// UL-NVME-01 — NVMe over Fabrics on RDMA (beyond the brief): nvmet-rdma, `nvme connect
// --reconnect-delay 1`, fio with verification on the namespace while the active link fails.
// The controller goes resetting → connecting → live through its own reconnect work.
import { suite } from '../harness/fixture/test.ts';
import { NvmeWorkload } from '../harness/workload/nvme.ts';
import { storageTests } from './lib/storage.ts';

suite('UL-NVME-01 NVMe over RDMA survives the loss of the active link', { requires: { nodes: 2, modules: ['nvme_rdma', 'nvmet_rdma'], tools: ['nvme', 'fio'], capabilities: ['carrier'] } }, () => {
  storageTests({
    ulp: 'nvme',
    id: 'UL-NVME-01',
    roles: ['initiator', 'target'],
    sides: ['host', 'target'],
    step: 8 * 2 ** 20,
    make: (t, host, target) => {
      const w = t.topology.workloads?.nvme;
      return new NvmeWorkload(t.lab, { host, target, sizeMiB: w?.size_mib ?? 48, reconnectDelayS: w?.reconnect_delay_s ?? 1, ...(w?.ctrl_loss_tmo_s !== undefined ? { ctrlLossTmoS: w.ctrl_loss_tmo_s } : {}) }).setup();
    },
  });
});
