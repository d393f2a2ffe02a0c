// Lustre LNet over o2iblnd (it rides the RDMA CM): LNet pings across the failover, LNet's own
// health values for the local and peer NIs. Real labs only: Debian ships no Lustre modules, so the
// VM lab skips it (its suite asks for the lnet and ko2iblnd modules).
import { defineUlp } from './ulp.ts';

export const lnet = defineUlp({
  name: 'lnet',
  title: 'LNet (o2iblnd)',
  planId: 'UL-LNET-01',
  reconnectBudgetMs: 60_000,
  workloadSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      client: { type: 'string', description: 'the node that pings' },
      server: { type: 'string', description: 'the node pinged' },
      net: { type: 'string', pattern: '^o2ib\\d*$', description: 'the LNet network on the bonds (default o2ib): configured by the lab, never by the harness' },
      interval_ms: { type: 'integer', minimum: 10, maximum: 10000 },
    },
  },
  nodeFields: ['client', 'server'],
  kmsgClasses: [['lnet', /LNet|LNetError|o2iblnd|kiblnd|\blnet\b/]],
  modules: [
    { name: 'lnet', neededBy: 'both ends' },
    { name: 'ko2iblnd', neededBy: 'both ends (LNet over the RDMA CM)' },
  ],
  tools: [{ name: 'lnetctl', pkg: 'lustre-client-utils (not in Debian: from the Lustre project)', neededBy: 'both ends' }],
  stackPattern: /lnet|kiblnd|o2iblnd|ptlrpc/,
} as const);
