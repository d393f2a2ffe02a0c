// SRP via the RDMA CM: ib_srpt target, ib_srp initiator (the known gap: ADDR_CHANGE unhandled).
import { defineUlp } from './ulp.ts';

export const srp = defineUlp({
  name: 'srp',
  title: 'SRP',
  planId: 'UL-SRP-01',
  reconnectBudgetMs: 60_000,
  workloadSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      target: { type: 'string' },
      initiator: { type: 'string' },
      size_mib: { type: 'integer', minimum: 1 },
    },
  },
  nodeFields: ['target', 'initiator'],
  kmsgClasses: [['srp', /\bib_srpt?\b|\bsrp\b/i]],
  modules: [
    { name: 'ib_srp', neededBy: 'initiator' },
    { name: 'ib_srpt', neededBy: 'target' },
  ],
  tools: [{ name: 'fio', pkg: 'fio', neededBy: 'initiator (verified I/O)' }],
  stackPattern: /srp|scsi/,
} as const);
