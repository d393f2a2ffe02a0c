// KernelCI: a run in KCIDB's I/O schema v5 (kcidb-io kcidb_io/schema/v05_00.py), ready for
// `kcidb-submit`. The kernel under test is the build (one checkout and one build per kernel
// release); each test of the run becomes one KCIDB test per node it ran on, with its status, its
// outage figure as a number with a unit, and the node's environment in misc. Ids start with the
// origin the lab names (KCIDB: "[a-z0-9_]+:…"). Nothing is submitted from here.
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { RunReport } from './schema.ts';

/** The parts of the KCIDB v5.0 schema the export relies on (required fields, patterns, enums). */
export const kcidbSchema = {
  $defs: {
    status: { type: 'string', enum: ['FAIL', 'ERROR', 'MISS', 'PASS', 'DONE', 'SKIP'] },
    /** an object's id: "<origin>:<anything>" */
    id: { type: 'string', pattern: '^[a-z0-9_]+:.*$' },
    origin: { type: 'string', pattern: '^[a-z0-9_]+$' },
    checkout: {
      type: 'object',
      required: ['id', 'origin'],
      properties: { id: { $ref: '#/$defs/id' }, origin: { $ref: '#/$defs/origin' }, comment: { type: 'string' }, start_time: { type: 'string', format: 'date-time' }, valid: { type: 'boolean' }, misc: { type: 'object' } },
      additionalProperties: false,
    },
    build: {
      type: 'object',
      required: ['checkout_id', 'id', 'origin'],
      properties: {
        checkout_id: { $ref: '#/$defs/id' },
        id: { $ref: '#/$defs/id' },
        origin: { $ref: '#/$defs/origin' },
        comment: { type: 'string' },
        start_time: { type: 'string', format: 'date-time' },
        architecture: { type: 'string', pattern: '^[a-z0-9_]*$' },
        config_name: { type: 'string' },
        status: { $ref: '#/$defs/status' },
        misc: { type: 'object' },
      },
      additionalProperties: false,
    },
    test: {
      type: 'object',
      required: ['build_id', 'id', 'origin'],
      properties: {
        build_id: { $ref: '#/$defs/id' },
        id: { $ref: '#/$defs/id' },
        origin: { $ref: '#/$defs/origin' },
        environment: { type: 'object', properties: { comment: { type: 'string' }, misc: { type: 'object' } }, additionalProperties: false },
        path: { type: 'string', pattern: '^([a-zA-Z0-9_-]+(\\.[a-zA-Z0-9_-]+)*)?$' },
        comment: { type: 'string' },
        log_excerpt: { type: 'string', maxLength: 16384 },
        status: { $ref: '#/$defs/status' },
        number: {
          type: 'object',
          required: ['value'],
          properties: { value: { type: 'number' }, unit: { type: 'string' }, prefix: { enum: ['metric', 'binary'] } },
          additionalProperties: false,
        },
        waived: { type: 'boolean' },
        start_time: { type: 'string', format: 'date-time' },
        duration: { type: 'number' },
        misc: { type: 'object' },
      },
      additionalProperties: false,
    },
  },
  type: 'object',
  required: ['version'],
  properties: {
    version: { type: 'object', required: ['major'], properties: { major: { const: 5 }, minor: { type: 'integer', minimum: 0, maximum: 0 } }, additionalProperties: false },
    checkouts: { type: 'array', items: { $ref: '#/$defs/checkout' } },
    builds: { type: 'array', items: { $ref: '#/$defs/build' } },
    tests: { type: 'array', items: { $ref: '#/$defs/test' } },
  },
  additionalProperties: false,
} as const;

export interface KcidbData {
  version: { major: 5; minor: 0 };
  checkouts: Record<string, unknown>[];
  builds: Record<string, unknown>[];
  tests: Record<string, unknown>[];
}

const STATUS: Record<RunReport['tests'][number]['status'], string> = { passed: 'PASS', failed: 'FAIL', skipped: 'SKIP', 'known-failure': 'FAIL', interrupted: 'ERROR' };

/** A KCIDB id part: anything but the characters that would make it ambiguous. */
const part = (s: string) => s.replace(/[^A-Za-z0-9_.-]+/g, '_');
/** A KCIDB test path node: [a-zA-Z0-9_-]+. */
const node = (s: string) => s.replace(/[^A-Za-z0-9_-]+/g, '_').replace(/^_+|_+$/g, '') || 'x';

export function toKcidb(r: RunReport, origin: string): KcidbData {
  if (!/^[a-z0-9_]+$/.test(origin)) throw new Error(`a KCIDB origin is [a-z0-9_]+ (got "${origin}")`);
  const kernels = new Map<string, { release: string; choice?: string; nodes: RunReport['environment'] }>();
  for (const e of r.environment) {
    const release = e.kernel ?? 'unknown';
    const k = kernels.get(release) ?? { release, ...(r.run.kernel ? { choice: r.run.kernel } : {}), nodes: [] };
    k.nodes.push(e);
    kernels.set(release, k);
  }
  if (!kernels.size) kernels.set('unknown', { release: 'unknown', nodes: [] });
  const buildOf = (release: string) => `${origin}:${part(r.run.id)}:build:${part(release)}`;
  const checkouts = [...kernels.values()].map((k) => ({
    id: `${origin}:${part(r.run.id)}:checkout:${part(k.release)}`,
    origin,
    comment: `Linux ${k.release}${k.choice ? ` (${k.choice})` : ''}, as installed on the lab nodes`,
    start_time: r.run.startedAt,
    valid: true,
    misc: { kernel_release: k.release, ...(k.choice ? { kernel_choice: k.choice } : {}), rdma_failover_run: r.run.id },
  }));
  const builds = [...kernels.values()].map((k, i) => ({
    checkout_id: checkouts[i]!.id,
    id: buildOf(k.release),
    origin,
    comment: `Linux ${k.release}`,
    start_time: r.run.startedAt,
    architecture: 'x86_64',
    config_name: k.release,
    status: 'PASS',
    misc: { modules: k.nodes[0]?.modules ?? {}, module_params: k.nodes[0]?.moduleParams ?? {} },
  }));
  const tests: Record<string, unknown>[] = [];
  r.tests.forEach((t, i) => {
    const ulp = t.ulp ?? t.timelines.map((tl) => tl.ulp).find((u) => u !== 'bond');
    // One KCIDB test per node of the lab: each node's kernel is a build under test.
    const on = r.environment.map((e) => e.node);
    for (const n of on.length ? on : ['lab']) {
      const env = r.environment.find((e) => e.node === n);
      const release = env?.kernel ?? [...kernels.keys()][0]!;
      const outage = t.timelines.map((tl) => tl.summary.ioResumedMs ?? tl.summary.reconnectMs).find((x) => x !== undefined);
      const started = t.steps[0]?.startedAt;
      tests.push({
        build_id: buildOf(release),
        id: `${origin}:${part(r.run.id)}:${i}:${part(t.planId ?? 'test')}:${part(ulp ?? 'bond')}:${part(n)}`,
        origin,
        path: ['rdma_failover', node(t.planId ?? 'untitled'), ...(ulp ? [node(ulp)] : [])].join('.'),
        comment: t.title,
        status: STATUS[t.status],
        ...(t.status === 'known-failure' ? { waived: true } : {}),
        ...(outage !== undefined ? { number: { value: outage, unit: 'ms' } } : {}),
        ...(started !== undefined ? { start_time: new Date(started).toISOString() } : {}),
        duration: t.durationMs / 1000,
        ...(t.error ? { log_excerpt: t.error.message.slice(0, 16384) } : t.knownFailure ? { log_excerpt: t.knownFailure.observed.slice(0, 16384) } : {}),
        environment: { comment: `${n} (${r.run.topology?.kind ?? 'lab'} ${r.run.topology?.name ?? ''})`.trim(), misc: { node: n, kernel: release, rdma_core: env?.rdmaCore ?? '', bonds: env?.bonds ?? [], hcas: env?.hcas ?? [] } },
        misc: {
          title: t.fullTitle,
          ...(t.knownFailure ? { known_issue: t.knownFailure.id, reference: t.knownFailure.reference } : {}),
          ...(t.skipReason ? { skip_reason: t.skipReason } : {}),
          metrics: t.metrics,
          run: r.run.id,
        },
      });
    }
  });
  return { version: { major: 5, minor: 0 }, checkouts, builds, tests };
}

const ajv = new Ajv2020({ allErrors: true, strict: false, validateFormats: false });
const check = ajv.compile(kcidbSchema);

/** Errors against the KCIDB v5.0 requirements, empty when valid. */
export function kcidbErrors(data: unknown): string[] {
  return check(data) ? [] : (check.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`);
}
