// iSER: an LIO target (ib_isert) and an open-iscsi initiator on an iser iface (ib_iser).
import { defineUlp } from './ulp.ts';

export const iser = defineUlp({
  name: 'iser',
  title: 'iSER',
  planId: 'UL-ISER-01',
  reconnectBudgetMs: 30_000,
  workloadSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      target: { type: 'string' },
      initiator: { type: 'string' },
      size_mib: { type: 'integer', minimum: 1 },
      replacement_timeout_s: { type: 'integer', minimum: 1 },
    },
  },
  nodeFields: ['target', 'initiator'],
  kmsgClasses: [
    ['isert', /isert|iSCSI Login|iSCSI\/iqn|iSCSI\/.*connection|iscsi_target/i],
    ['iser', /\biser[:_]|\biscsi:|connection\d+:\d+|session\d+:|scsi host\d+: iSCSI/],
  ],
  modules: [
    { name: 'ib_iser', neededBy: 'initiator' },
    { name: 'ib_isert', neededBy: 'target' },
  ],
  paramModules: ['ib_iser'],
  // Measured on the VM lab (siw, 6.1): "isert: isert_setup_id: rdma_listen() failed: -98".
  unsupported: [{ on: ['siw'], why: 'LIO opens the portal\'s TCP listener first and enables iSER on the same address and port; siw uses the host\'s TCP stack without port mapping (IW_F_NO_PORT_MAP, siw_main.c), so isert\'s rdma_listen() fails with EADDRINUSE (-98) and no iSER portal can exist (hardware iWARP maps the port through iwpmd)' }],
  tools: [
    { name: 'iscsiadm', pkg: 'open-iscsi', neededBy: 'initiator' },
    { name: 'targetcli', pkg: 'targetcli-fb', neededBy: 'target (configfs is used when it cannot run)' },
    { name: 'fio', pkg: 'fio', neededBy: 'initiator (verified I/O)' },
  ],
  stackPattern: /iser|isert|iscsi|scsi/,
  liveness: {
    timer: 'NOP-Out (noop_out_interval 5 s + noop_out_timeout 5 s)',
    boundMs: 12_000,
    fired: (e) => e.source === 'kmsg' && /connection\d+:\d+: ping timeout of \d+ secs expired|detected conn error \(1022\)/.test(e.text),
    shows: '"ping timeout … expired" in the kernel log',
  },
} as const);
