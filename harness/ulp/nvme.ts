// NVMe over Fabrics on RDMA: nvmet-rdma target, nvme-rdma host (beyond the brief).
import { defineUlp } from './ulp.ts';

export const nvme = defineUlp({
  name: 'nvme',
  title: 'NVMe/RDMA',
  planId: 'UL-NVME-01',
  reconnectBudgetMs: 25_000,
  workloadSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      target: { type: 'string' },
      host: { type: 'string' },
      size_mib: { type: 'integer', minimum: 1 },
      reconnect_delay_s: { type: 'integer', minimum: 1 },
      ctrl_loss_tmo_s: { type: 'integer', minimum: -1 },
    },
  },
  nodeFields: ['target', 'host'],
  kmsgClasses: [['nvme', /\bnvmet?\b|nvme\d/]],
  modules: [
    { name: 'nvme_rdma', neededBy: 'host' },
    { name: 'nvmet_rdma', neededBy: 'target' },
  ],
  paramModules: ['nvme_core'],
  tools: [
    { name: 'nvme', pkg: 'nvme-cli', neededBy: 'host' },
    { name: 'fio', pkg: 'fio', neededBy: 'host (verified I/O)' },
  ],
  stackPattern: /nvme/,
  liveness: {
    timer: 'the keep-alive (kato 5 s)',
    boundMs: 15_000,
    fired: (e) => e.source === 'kmsg' && /nvme nvme\d+: (I\/O \d+ QID \d+ timeout|starting error recovery|failed nvme_keep_alive_end_io)/.test(e.text),
    shows: 'a keep-alive/command timeout in the kernel log',
  },
} as const);
