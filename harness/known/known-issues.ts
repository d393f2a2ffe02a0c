// Known issues as data: a failure that is known for a test, on a kernel release range and a
// transport, with its bug reference. Such a failure is reported KNOWN — not as news — and strictly:
// the same failure must happen (its message matches), and if the test passes the run says so.
// Shipped defaults (known-issues.yaml) plus a lab's own files (run --known-issues FILE).
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { FromSchema } from 'json-schema-to-ts';
import { PROJECT_ROOT } from '../vmlab/paths.ts';
import type { HealthKind } from '../health/health.ts';

const TEST_ID = { type: 'string', pattern: '^(BC|CM|UL|RF)-([A-Z]+-)?\\d{2}$' } as const;

export const knownIssueSchema = {
  type: 'array',
  items: {
    type: 'object',
    required: ['id', 'test', 'failure', 'reference', 'summary'],
    additionalProperties: false,
    properties: {
      id: { type: 'string', pattern: '^[A-Za-z0-9._-]+$', description: 'a stable name for the issue' },
      test: {
        description: 'the test plan ID, or several: one mechanism (a transport bug) can fail several tests',
        oneOf: [TEST_ID, { type: 'array', minItems: 1, uniqueItems: true, items: TEST_ID }],
      },
      ulp: {
        description: 'the ULP of the suite (iser, nfs, nvme, rds, srp, rping), or several: RF-* tests exist per ULP',
        oneOf: [{ type: 'string' }, { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string' } }],
      },
      title: { type: 'string', minLength: 1, description: 'a regular expression on the test title, where a test plan ID has several tests (RF-03 short and long)' },
      kernel: {
        type: 'object',
        additionalProperties: false,
        description: 'the kernel releases it is known on: from <= release < before (either side may be left out)',
        properties: { from: { type: 'string', pattern: '^\\d+(\\.\\d+){0,2}$' }, before: { type: 'string', pattern: '^\\d+(\\.\\d+){0,2}$' } },
      },
      transport: { enum: ['rxe', 'siw', 'roce', 'ipoib'], description: 'only on labs whose bond slaves are of this kind' },
      failure: { type: 'string', minLength: 1, description: 'a regular expression the failure message must match' },
      evidence: { type: 'string', minLength: 1, description: 'a regular expression the kernel log of the test (with its rpcrdma/sunrpc tracepoints, a line each as "node point: fields", and the node health findings) must match too: the mechanism, not only the symptom' },
      intermittent: { type: 'boolean', description: 'the failure needs a race the test provokes but cannot force: a pass is a PASS (noted in the report), a failure must still be this one' },
      reference: { type: 'string', minLength: 1, description: 'a bug URL, a commit, or where it was measured' },
      summary: { type: 'string', minLength: 1, description: 'one line: what goes wrong, for the report' },
    },
  },
} as const;

export type KnownIssue = FromSchema<typeof knownIssueSchema>[number] & { file: string; line: number };

const ajv = new Ajv2020({ allErrors: true, strict: false });
const validate = ajv.compile(knownIssueSchema);

export class KnownIssuesError extends Error {
  override name = 'KnownIssuesError';
}

export const SHIPPED_KNOWN_ISSUES = resolve(PROJECT_ROOT, 'known-issues.yaml');

/** Loads and validates one file; errors name file:line:col. */
export function loadKnownIssues(file: string): KnownIssue[] {
  const text = readFileSync(file, 'utf8');
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true });
  const pos = (offset: number) => {
    const p = lines.linePos(offset);
    return `${file}:${p.line}:${p.col}`;
  };
  if (doc.errors.length) throw new KnownIssuesError(doc.errors.map((e) => `${pos(e.pos[0])}: ${e.message}`).join('\n'));
  const data = (doc.toJS() ?? []) as unknown;
  if (!validate(data)) {
    const msgs = (validate.errors ?? []).map((e) => {
      const path = e.instancePath.split('/').filter(Boolean).map((x) => (/^\d+$/.test(x) ? Number(x) : x));
      const node = doc.getIn(path, true) as { range?: [number, number, number] } | undefined;
      return `${node?.range ? pos(node.range[0]) : file}: ${e.instancePath || '/'} ${e.message ?? ''}`;
    });
    throw new KnownIssuesError(`${file} is not a valid known-issues file:\n${msgs.join('\n')}`);
  }
  const items = (doc.contents as { items?: { range?: [number, number, number] }[] } | null)?.items ?? [];
  return (data as FromSchema<typeof knownIssueSchema>).map((k, i) => {
    for (const field of ['failure', 'evidence', 'title'] as const) {
      try {
        if (k[field] !== undefined) new RegExp(k[field]);
      } catch (e) {
        throw new KnownIssuesError(`${pos(items[i]?.range?.[0] ?? 0)}: ${field} is not a valid regular expression: ${(e as Error).message}`);
      }
    }
    return { ...k, file, line: items[i]?.range ? lines.linePos(items[i].range[0]).line : 1 };
  });
}

/** The shipped defaults and the files named (RDMA_FAILOVER_KNOWN_ISSUES: paths separated by ":"). */
export function knownIssues(extra: string[] = (process.env.RDMA_FAILOVER_KNOWN_ISSUES ?? '').split(':').filter(Boolean)): KnownIssue[] {
  const files = [...(existsSync(SHIPPED_KNOWN_ISSUES) ? [SHIPPED_KNOWN_ISSUES] : []), ...extra.map((f) => resolve(f))];
  const all = files.flatMap(loadKnownIssues);
  const seen = new Map<string, KnownIssue>();
  for (const k of all) {
    const twin = seen.get(k.id);
    if (twin) throw new KnownIssuesError(`${k.file}:${k.line}: known issue ${k.id} is already defined at ${twin.file}:${twin.line}`);
    seen.set(k.id, k);
  }
  return all;
}

function version(s: string): number[] {
  return (/^(\d+(?:\.\d+)*)/.exec(s)?.[1] ?? '0').split('.').map(Number);
}

function compare(a: number[], b: number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d) return d;
  }
  return 0;
}

/** Is the kernel release (uname -r, e.g. 6.1.0-57-amd64) in the issue's range? "6.1" as `before`
 *  means below 6.1.0; compared on the leading numbers only. */
export function kernelInRange(release: string, range: KnownIssue['kernel']): boolean {
  if (!range) return true;
  const v = version(release);
  if (range.from && compare(v, version(range.from)) < 0) return false;
  if (range.before && compare(v, version(range.before)) >= 0) return false;
  return true;
}

export interface TestIdentity {
  planId?: string;
  title?: string;
  ulp?: string;
  kernel: string;
  transports: string[];
}

/** Does a failure match the issue: its message, and (when the issue names one) its mechanism in
 *  the kernel log and health findings of the test. */
export function failureMatches(k: KnownIssue, message: string, kernelText: string): boolean {
  return new RegExp(k.failure).test(message) && (k.evidence === undefined || new RegExp(k.evidence).test(kernelText));
}

/** The issues known for this test on this kernel and transport (whatever its outcome). */
export function issuesFor(all: readonly KnownIssue[], t: TestIdentity): KnownIssue[] {
  const has = (v: string | readonly string[] | undefined, x: string | undefined) => v === undefined || (typeof v === 'string' ? v === x : x !== undefined && v.includes(x));
  return all.filter((k) => t.planId !== undefined && has(k.test, t.planId) && has(k.ulp, t.ulp) && (!k.title || new RegExp(k.title).test(t.title ?? '')) && kernelInRange(t.kernel, k.kernel) && (!k.transport || t.transports.includes(k.transport)));
}

/** A node health finding a test may leave without failing: kind + pattern (on the finding's detail
 *  and evidence) + reason; `kernel`: only on those releases. */
export interface HealthAllowance {
  kind: HealthKind;
  pattern: string;
  reason: string;
  kernel?: KnownIssue['kernel'];
}

/** A known kernel warning (a false positive, such as a WARN_ONCE the ULP's teardown trips) as a
 *  health allowance, for a test outside the plan that uses the same ULP (an honesty test): only a
 *  kernel-log finding that is exactly `lines` lines of class warning with the issue's evidence, on
 *  the issue's kernels. The issue's entry stays the one place that says why. */
export function knownWarning(id: string, lines: number, all: readonly KnownIssue[] = knownIssues()): HealthAllowance {
  const k = all.find((x) => x.id === id);
  if (!k?.evidence) throw new KnownIssuesError(`known issue ${id} ${k ? 'has no evidence pattern' : 'is not defined'}: it cannot be allowed by its evidence`);
  return {
    kind: 'kernel-log',
    pattern: `^${lines} kernel log line\\(s\\) of class warning: [\\s\\S]*(?:${k.evidence})`,
    reason: `known issue ${k.id} (${k.file.split('/').pop()}:${k.line}): ${k.summary}`,
    ...(k.kernel ? { kernel: k.kernel } : {}),
  };
}
