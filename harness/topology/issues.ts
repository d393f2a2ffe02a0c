// Findings about a topology file, each pinned to file:line:col so an editor can jump to it.

export type Severity = 'error' | 'warning';

export interface TopologyIssue {
  severity: Severity;
  file: string;
  line: number;
  col: number;
  /** Where in the document, e.g. nodes[0].bonds[0].slaves[1].link */
  path: string;
  message: string;
}

export function formatIssue(i: TopologyIssue): string {
  const where = i.path ? `${i.path}: ` : '';
  return `${i.file}:${i.line}:${i.col}: ${i.severity}: ${where}${i.message}`;
}

export function formatPath(segments: readonly (string | number)[]): string {
  let out = '';
  for (const s of segments) {
    if (typeof s === 'number') out += `[${s}]`;
    else out += out ? `.${s}` : s;
  }
  return out;
}

export class TopologyError extends Error {
  readonly issues: readonly TopologyIssue[];
  constructor(issues: readonly TopologyIssue[]) {
    const errors = issues.filter((i) => i.severity === 'error');
    super(`topology is invalid (${errors.length} error${errors.length === 1 ? '' : 's'}):\n` + errors.map(formatIssue).join('\n'));
    this.name = 'TopologyError';
    this.issues = issues;
  }
}
