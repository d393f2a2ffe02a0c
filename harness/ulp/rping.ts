// rping (rdma-core's example): the reference for a ULP that does not reconnect.
import { defineUlp } from './ulp.ts';

export const rping = defineUlp({
  name: 'rping',
  title: 'rping',
  planId: 'UL-RPING-01',
  reconnectBudgetMs: 10_000,
  workloadSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      server: { type: 'string' },
      client: { type: 'string' },
      size: { type: 'integer', minimum: 16 },
      port: { type: 'integer', minimum: 1, maximum: 65535 },
    },
  },
  nodeFields: ['server', 'client'],
  kmsgClasses: [],
  modules: [{ name: 'rdma_ucm', neededBy: 'both ends (user-space RDMA CM)' }],
  tools: [{ name: 'rping', pkg: 'rdmacm-utils', neededBy: 'both ends' }],
  stackPattern: /rdma_ucm|ucma/,
} as const);
