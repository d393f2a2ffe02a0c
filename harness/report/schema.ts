// The report's JSON Schema (published as reports/report.schema.json by `rdma-failover report
// --schema`). Every report.json is validated against it before it is written: a report that does
// not match is a bug. TypeScript types are derived from it.
import type { FromSchema } from 'json-schema-to-ts';

const phase = {
  type: 'object',
  required: ['id', 'label'],
  additionalProperties: false,
  properties: {
    id: { type: 'string' },
    label: { type: 'string' },
    atMs: { type: 'number' },
    sincePrevMs: { type: 'number' },
    node: { type: 'string' },
    detail: { type: 'string' },
    missing: { type: 'boolean' },
    reason: { type: 'string' },
    evidence: {
      type: 'object',
      required: ['source', 'node', 't'],
      additionalProperties: false,
      properties: { source: { type: 'string' }, node: { type: 'string' }, t: { type: 'number' }, raw: { type: 'string' } },
    },
  },
} as const;

const timeline = {
  type: 'object',
  required: ['ulp', 'connection', 'fault', 'phases', 'summary', 'windowMs', 'errorBoundMs'],
  additionalProperties: false,
  properties: {
    ulp: { type: 'string' },
    connection: { type: 'string' },
    fault: {
      type: 'object',
      required: ['t', 'node', 'kind', 'description'],
      additionalProperties: false,
      properties: {
        t: { type: 'number' },
        node: { type: 'string' },
        ifname: { type: 'string' },
        bond: { type: 'string' },
        kind: { type: 'string' },
        description: { type: 'string' },
        before: { type: 'object', additionalProperties: false, properties: { activeSlave: { type: 'string' }, address: { type: 'string' } }, required: ['activeSlave', 'address'] },
        injectMs: { type: 'number' },
      },
    },
    phases: { type: 'array', items: phase },
    summary: {
      type: 'object',
      additionalProperties: false,
      properties: {
        effectMs: { type: 'number' },
        failoverMs: { type: 'number' },
        newActiveSlave: { type: 'string' },
        oldAddress: { type: 'string' },
        newAddress: { type: 'string' },
        reconnectMs: { type: 'number' },
        outageMs: { type: 'number' },
        ioResumedMs: { type: 'number' },
        garpCountSeen: { type: 'number' },
        rejectsBeforeEstablished: { type: 'number' },
      },
    },
    windowMs: { type: 'number' },
    errorBoundMs: { type: 'number', minimum: 0 },
  },
} as const;

const healthFinding = {
  type: 'object',
  required: ['node', 'kind', 'detail', 'evidence'],
  additionalProperties: false,
  properties: {
    node: { type: 'string' },
    kind: { enum: ['unresponsive', 'gsi-qp-error', 'nic-stall', 'd-state', 'kernel-log', 'no-progress', 'oopsed', 'freed-in-use'] },
    detail: { type: 'string' },
    evidence: { type: 'array', items: { type: 'string' } },
    labInfrastructure: { type: 'boolean' },
    allowedBecause: { type: 'string' },
  },
} as const;

const step = {
  type: 'object',
  required: ['name', 'startedAt', 'durationMs'],
  additionalProperties: false,
  properties: { name: { type: 'string' }, startedAt: { type: 'number' }, durationMs: { type: 'number' }, error: { type: 'string' } },
} as const;

const testEntry = {
  type: 'object',
  required: ['title', 'fullTitle', 'suite', 'status', 'durationMs', 'steps', 'metrics', 'timelines', 'health', 'attempts', 'repairs', 'attachments'],
  additionalProperties: false,
  properties: {
    planId: { type: 'string', pattern: '^(BC|CM|UL|RF)-([A-Z]+-)?\\d{2}$' },
    title: { type: 'string' },
    fullTitle: { type: 'string' },
    suite: { type: 'string' },
    file: { type: 'string' },
    status: { enum: ['passed', 'failed', 'skipped', 'known-failure', 'interrupted'] },
    durationMs: { type: 'number', minimum: 0 },
    error: { type: 'object', required: ['message'], additionalProperties: false, properties: { message: { type: 'string' }, stack: { type: 'string' } } },
    skipReason: { type: 'string' },
    provenance: {
      type: 'object',
      description: 'where the test ran, in a merged report: its run, shard, lab and kernel',
      required: ['run'],
      additionalProperties: false,
      properties: { run: { type: 'string' }, shard: { type: 'string' }, lab: { type: 'string' }, kernel: { type: 'string' } },
    },
    knownFailure: {
      type: 'object',
      description: 'the test failed the way a known issue says',
      required: ['id', 'reference', 'summary', 'source', 'observed'],
      additionalProperties: false,
      properties: { id: { type: 'string' }, reference: { type: 'string' }, summary: { type: 'string' }, source: { type: 'string' }, observed: { type: 'string' } },
    },
    ulp: { type: 'string' },
    steps: { type: 'array', items: step },
    harness: { type: 'array', items: step, description: "the harness's own work around and inside the test (readiness, monitors, evidence, health, teardown)" },
    metrics: {
      type: 'array',
      items: { type: 'object', required: ['name', 'value', 'unit'], additionalProperties: false, properties: { name: { type: 'string' }, value: { type: 'number' }, unit: { type: 'string' } } },
    },
    timelines: { type: 'array', items: timeline },
    workloads: {
      type: 'array',
      items: {
        type: 'object',
        required: ['workload', 'ulp', 'dataOk', 'summary'],
        additionalProperties: false,
        properties: { workload: { type: 'string' }, ulp: { type: 'string' }, dataOk: { type: 'boolean' }, summary: { type: 'string' }, errors: { type: 'array', items: { type: 'string' } } },
      },
    },
    health: { type: 'array', items: healthFinding },
    attempts: {
      type: 'array',
      items: {
        type: 'object',
        required: ['infrastructure', 'health', 'steps'],
        additionalProperties: false,
        properties: { error: { type: 'string' }, infrastructure: { type: 'string' }, health: { type: 'array', items: healthFinding }, steps: { type: 'array', items: step } },
      },
    },
    repairs: {
      type: 'array',
      items: { type: 'object', required: ['node', 'why', 'action'], additionalProperties: false, properties: { node: { type: 'string' }, why: { type: 'string' }, action: { type: 'string' } } },
    },
    attachments: {
      type: 'array',
      items: { type: 'object', required: ['name', 'contentType', 'body'], additionalProperties: false, properties: { name: { type: 'string' }, contentType: { type: 'string' }, body: { type: 'string' } } },
    },
    /** the node's kernel when a matrix run merged several kernels */
    kernel: { type: 'string' },
  },
} as const;

const nodeEnv = {
  type: 'object',
  required: ['node', 'kernel'],
  additionalProperties: false,
  properties: {
    node: { type: 'string' },
    address: { type: 'string' },
    kernel: { type: 'string' },
    modules: { type: 'object', additionalProperties: { type: 'string' } },
    moduleParams: { type: 'object', additionalProperties: { type: 'string' } },
    rdmaCore: { type: 'string' },
    hcas: {
      type: 'array',
      items: { type: 'object', required: ['device'], additionalProperties: false, properties: { device: { type: 'string' }, model: { type: 'string' }, firmware: { type: 'string' }, psid: { type: 'string' }, nodeGuid: { type: 'string' } } },
    },
    bonds: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name'],
        additionalProperties: false,
        properties: { name: { type: 'string' }, mode: { type: 'string' }, failOverMac: { type: 'string' }, miimon: { type: 'number' }, numGratArp: { type: 'number' }, slaves: { type: 'array', items: { type: 'string' } }, type: { type: 'number' } },
      },
    },
    clock: { type: 'object', additionalProperties: false, properties: { offsetMs: { type: 'number' }, boundMs: { type: 'number' } } },
  },
} as const;

export const reportSchema = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  $id: 'https://rdma-failover.invalid/schema/report.json',
  title: 'rdma-failover run report',
  type: 'object',
  required: ['schemaVersion', 'run', 'environment', 'tests', 'summary'],
  additionalProperties: false,
  properties: {
    schemaVersion: { const: 1 },
    run: {
      type: 'object',
      required: ['id', 'startedAt', 'finishedAt', 'harnessVersion', 'command'],
      additionalProperties: false,
      properties: {
        id: { type: 'string', pattern: '^[A-Za-z0-9._-]+$' },
        startedAt: { type: 'string', format: 'date-time' },
        finishedAt: { type: 'string', format: 'date-time' },
        harnessVersion: { type: 'string' },
        gitCommit: { type: 'string' },
        command: { type: 'string' },
        topology: {
          type: 'object',
          required: ['file', 'name', 'kind', 'sha256'],
          additionalProperties: false,
          properties: {
            file: { type: 'string' },
            name: { type: 'string' },
            kind: { enum: ['real', 'vm'] },
            sha256: { type: 'string', pattern: '^[0-9a-f]{64}$' },
            transports: { type: 'array', items: { enum: ['ipoib', 'roce', 'rxe', 'siw'] }, description: "the bond slaves' link types: the RDMA transport under test" },
          },
        },
        kernel: { type: 'string', description: 'the guest kernel choice in a VM lab' },
        shard: { type: 'string', pattern: '^\\d+/\\d+$', description: 'this run ran shard i of n (run --shard)' },
        merged: { type: 'array', items: { type: 'string' }, description: 'the runs this report merges (report merge)' },
        interrupted: {
          type: 'object',
          description: 'the run was stopped (Ctrl-C, SIGTERM, the runner died): tests after it did not run',
          required: ['why', 'at'],
          additionalProperties: false,
          properties: { why: { type: 'string' }, at: { type: 'string', format: 'date-time' } },
        },
        notRestored: {
          type: 'object',
          description: 'what the run could not put back on the lab at its end; the journals keep it',
          required: ['problems', 'journals'],
          additionalProperties: false,
          properties: { problems: { type: 'array', items: { type: 'string' } }, journals: { type: 'array', items: { type: 'string' } } },
        },
        stopped: {
          type: 'object',
          description: 'a real lab lost a node: the run stopped, these journals say what is left to restore',
          required: ['reason', 'journals'],
          additionalProperties: false,
          properties: { reason: { type: 'string' }, journals: { type: 'array', items: { type: 'string' } } },
        },
      },
    },
    environment: { type: 'array', items: nodeEnv },
    tests: { type: 'array', items: testEntry },
    summary: {
      type: 'object',
      required: ['passed', 'failed', 'skipped', 'knownFailures', 'total'],
      additionalProperties: false,
      properties: {
        passed: { type: 'integer', minimum: 0 },
        failed: { type: 'integer', minimum: 0 },
        skipped: { type: 'integer', minimum: 0 },
        knownFailures: { type: 'integer', minimum: 0 },
        interrupted: { type: 'integer', minimum: 0 },
        repeats: {
          type: 'array',
          description: 'tests run several times (--repeat): verdict counts, passRate (the share of the runs that ran whose verdict was the expected one: a pass, or the known failure — see passed and known), outage distribution, unstable when the verdict changed',
          items: {
            type: 'object',
            required: ['title', 'runs', 'passed', 'failed', 'known', 'skipped', 'passRate', 'verdicts', 'unstable'],
            additionalProperties: false,
            properties: {
              title: { type: 'string' },
              planId: { type: 'string' },
              runs: { type: 'integer' },
              passed: { type: 'integer' },
              failed: { type: 'integer' },
              known: { type: 'integer' },
              skipped: { type: 'integer' },
              passRate: { type: 'number', minimum: 0, maximum: 1 },
              verdicts: { type: 'array', items: { type: 'string' } },
              outage: {
                type: 'object',
                required: ['minMs', 'medianMs', 'p90Ms', 'maxMs', 'samples'],
                additionalProperties: false,
                properties: { minMs: { type: 'number' }, medianMs: { type: 'number' }, p90Ms: { type: 'number' }, maxMs: { type: 'number' }, samples: { type: 'integer' } },
              },
              unstable: { type: 'boolean' },
            },
          },
        },
        total: { type: 'integer', minimum: 0 },
        outage: {
          type: 'array',
          items: {
            type: 'object',
            required: ['ulp', 'count', 'medianMs', 'worstMs'],
            additionalProperties: false,
            properties: { ulp: { type: 'string' }, count: { type: 'integer' }, medianMs: { type: 'number' }, worstMs: { type: 'number' }, worstTest: { type: 'string' } },
          },
        },
      },
    },
  },
} as const;

export type RunReport = FromSchema<typeof reportSchema>;
export type ReportTest = RunReport['tests'][number];
export type NodeEnvironment = RunReport['environment'][number];
export type ReportTimeline = ReportTest['timelines'][number];
