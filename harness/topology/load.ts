// Load a topology: YAML → positions → ajv (schema) → cross-field rules → warnings.
// Every finding names file:line:col; the document's own node ranges give the positions.
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { isMap, isPair, isScalar, LineCounter, parseDocument, type Document, type Node as YamlNode } from 'yaml';
import { Ajv2020, type ErrorObject } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import ajvErrorsModule from 'ajv-errors';
import { topologySchema, type Topology } from './schema.ts';
import { formatPath, TopologyError, type Severity, type TopologyIssue } from './issues.ts';
import { checkRules } from './rules.ts';

// Under ESM these CommonJS plugins arrive either as the function or wrapped in .default.
type Plugin = (ajv: Ajv2020, opts?: unknown) => Ajv2020;
const unwrap = (m: unknown): Plugin => ((m as { default?: Plugin }).default ?? (m as Plugin));
const addFormats = unwrap(addFormatsModule);
const ajvErrors = unwrap(ajvErrorsModule);

const ajv = new Ajv2020({ allErrors: true, strict: false, allowUnionTypes: true });
addFormats(ajv);
ajvErrors(ajv);
const validateSchema = ajv.compile(topologySchema);

export interface LoadedTopology {
  topology: Topology;
  file: string;
  /** sha256 of the file's bytes, recorded in reports */
  sha256: string;
  warnings: TopologyIssue[];
}

/** Locates document paths in the source text. */
export class SourceMap {
  private readonly doc: Document;
  private readonly lines: LineCounter;
  readonly file: string;

  constructor(file: string, doc: Document, lines: LineCounter) {
    this.file = file;
    this.doc = doc;
    this.lines = lines;
  }

  /** Position of the value at path; for a key that is absent, the closest existing parent. */
  locate(path: readonly (string | number)[], opts: { key?: boolean } = {}): { line: number; col: number } {
    for (let n = path.length; n >= 0; n--) {
      const sub = path.slice(0, n);
      if (opts.key && n === path.length && n > 0) {
        const pos = this.keyPosition(sub);
        if (pos) return pos;
      }
      const node = this.doc.getIn(sub, true) as YamlNode | undefined;
      if (node && (node as { range?: unknown }).range) return this.pos((node as { range: [number, number, number] }).range[0]);
      if (n === 0 && this.doc.contents && 'range' in this.doc.contents && this.doc.contents.range) {
        return this.pos(this.doc.contents.range[0]);
      }
    }
    return { line: 1, col: 1 };
  }

  /** Position of a key inside the map at parentPath + [key]. */
  private keyPosition(path: readonly (string | number)[]): { line: number; col: number } | undefined {
    const parent = path.length === 1 ? this.doc.contents : this.doc.getIn(path.slice(0, -1), true);
    if (!isMap(parent)) return undefined;
    const last = path[path.length - 1];
    for (const item of parent.items) {
      if (isPair(item) && isScalar(item.key) && item.key.value === last && item.key.range) return this.pos(item.key.range[0]);
    }
    return undefined;
  }

  pos(offset: number): { line: number; col: number } {
    const p = this.lines.linePos(offset);
    return { line: p.line, col: p.col };
  }

  issue(severity: Severity, path: readonly (string | number)[], message: string, opts: { key?: boolean } = {}): TopologyIssue {
    const { line, col } = this.locate(path, opts);
    return { severity, file: this.file, line, col, path: formatPath(path), message };
  }
}

function pointerToPath(pointer: string, data: unknown): (string | number)[] {
  if (!pointer) return [];
  const out: (string | number)[] = [];
  let cur: unknown = data;
  for (const raw of pointer.slice(1).split('/')) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(cur)) {
      const i = Number(seg);
      out.push(i);
      cur = cur[i];
    } else {
      out.push(seg);
      cur = cur && typeof cur === 'object' ? (cur as Record<string, unknown>)[seg] : undefined;
    }
  }
  return out;
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return `${typeof value} ${JSON.stringify(value)}`;
}

function valueAt(data: unknown, path: readonly (string | number)[]): unknown {
  let cur: unknown = data;
  for (const s of path) cur = cur && typeof cur === 'object' ? (cur as Record<string | number, unknown>)[s] : undefined;
  return cur;
}

function schemaErrorsToIssues(errors: readonly ErrorObject[], data: unknown, src: SourceMap): TopologyIssue[] {
  const issues: TopologyIssue[] = [];
  // Composite keywords (oneOf/if) repeat what their branches already said: keep them only when alone.
  const specific = errors.filter((e) => !['oneOf', 'anyOf', 'if'].includes(e.keyword));
  const chosen = specific.length ? specific : errors;
  for (const e of chosen) {
    const path = pointerToPath(e.instancePath, data);
    const value = valueAt(data, path);
    const inner = e.keyword === 'errorMessage' ? ((e.params as { errors?: ErrorObject[] }).errors ?? []) : [e];
    const first = inner[0];
    switch (first?.keyword) {
      case 'additionalProperties': {
        for (const ie of inner) {
          const key = (ie.params as { additionalProperty: string }).additionalProperty;
          const msg = e.keyword === 'errorMessage' ? `unknown key "${key}": ${e.message}` : `unknown key "${key}"`;
          issues.push(src.issue('error', [...path, key], msg, { key: true }));
        }
        continue;
      }
      case 'required': {
        const key = (first.params as { missingProperty: string }).missingProperty;
        issues.push(src.issue('error', path, `missing required key "${key}"`));
        continue;
      }
      case 'enum': {
        const allowed = (first.params as { allowedValues: unknown[] }).allowedValues.map(String).join(', ');
        issues.push(src.issue('error', path, `must be one of: ${allowed} (got ${describe(value)})`));
        continue;
      }
      case 'type':
        issues.push(src.issue('error', path, `must be ${(first.params as { type: string }).type} (got ${describe(value)})`));
        continue;
      case 'minimum':
      case 'maximum':
        issues.push(src.issue('error', path, `${first.message ?? 'out of range'} (got ${describe(value)})`));
        continue;
      default:
        issues.push(src.issue('error', path, `${e.message ?? 'is invalid'}${value !== undefined && typeof value !== 'object' ? ` (got ${describe(value)})` : ''}`));
    }
  }
  // ajv can report the same place twice through different keywords; keep one line per message.
  const seen = new Set<string>();
  return issues.filter((i) => {
    const k = `${i.line}:${i.col}:${i.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** Parse and check a topology given as text. Returns every finding; throws nothing. */
export function checkTopologyText(text: string, file: string): { topology?: Topology; issues: TopologyIssue[] } {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const issues: TopologyIssue[] = [];
  const yamlProblems = [...doc.errors.map((e) => ['error', e] as const), ...doc.warnings.map((w) => ['warning', w] as const)];
  for (const [severity, err] of yamlProblems) {
    const pos = err.linePos?.[0] ?? lineCounter.linePos(err.pos[0]);
    const msg = err.code === 'DUPLICATE_KEY' ? 'duplicate key (each key may appear once in a mapping)' : (err.message.split('\n')[0] ?? err.message);
    issues.push({ severity, file, line: pos.line, col: pos.col, path: '', message: msg });
  }
  if (issues.some((i) => i.severity === 'error')) return { issues };
  const data: unknown = doc.toJS();
  const src = new SourceMap(file, doc, lineCounter);
  if (!validateSchema(data)) {
    issues.push(...schemaErrorsToIssues(validateSchema.errors ?? [], data, src));
    return { issues };
  }
  const topology = data as Topology;
  issues.push(...checkRules(topology, src));
  return { topology, issues };
}

/** Load a topology file; throws TopologyError listing every error. Warnings are returned. */
export function loadTopology(file: string): LoadedTopology {
  const bytes = readFileSync(file);
  const { topology, issues } = checkTopologyText(bytes.toString('utf8'), file);
  if (!topology || issues.some((i) => i.severity === 'error')) throw new TopologyError(issues);
  return {
    topology,
    file,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    warnings: issues.filter((i) => i.severity === 'warning'),
  };
}
