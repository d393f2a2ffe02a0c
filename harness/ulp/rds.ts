// RDS over RDMA (rds_rdma): sequence-numbered, hashed messages both ways over AF_RDS.
import { defineUlp } from './ulp.ts';

export const rds = defineUlp({
  name: 'rds',
  title: 'RDS',
  planId: 'UL-RDS-01',
  reconnectBudgetMs: 10_000,
  workloadSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      port: { type: 'integer', minimum: 1, maximum: 65535 },
      message_size: { type: 'integer', minimum: 64, maximum: 65000 },
      rate: { type: 'integer', minimum: 1, maximum: 100000, description: 'messages per second per direction' },
      nodes: { type: 'array', items: { type: 'string' }, minItems: 2, maxItems: 2 },
    },
  },
  nodeFields: ['nodes'],
  kmsgClasses: [['rds', /\bRDS\/|\brds_ib|\brds:/]],
  modules: [{ name: 'rds_rdma', neededBy: 'both ends' }],
  unsupported: [{ on: ['iwarp'], why: 'rds_rdma takes only InfiniBand-type devices (net/rds/ib.c rds_ib_add_one: "Only handle IB (no iWARP) devices")' }],
  tools: [{ name: 'python3', pkg: 'python3', neededBy: 'the traffic tool (AF_RDS)' }],
  stackPattern: /\brds/,
} as const);
