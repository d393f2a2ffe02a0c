// --rerun-failed RUN_DIR: the tests of a finished run that failed, or left a node dead or wedged
// (a crashed kernel fails its test, and the run goes on): their exact full titles as a mocha grep,
// and the spec files they came from.
import type { RunReport } from '../report/schema.ts';

const DEAD = new Set(['unresponsive', 'oopsed', 'freed-in-use', 'gsi-qp-error', 'd-state']);

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export function rerunSelection(r: RunReport): { titles: string[]; grep: string; files: string[] } {
  const again = r.tests.filter((t) => t.status === 'failed' || t.health.some((h) => DEAD.has(h.kind)));
  // A repeated test's title carries "[repeat i/N]": rerun the test itself.
  const titles = [...new Set(again.map((t) => t.fullTitle.replace(/ \[repeat \d+\/\d+\]$/, '')))];
  const files = [...new Set(again.flatMap((t) => (t.file ? [t.file] : [])))];
  return { titles, grep: titles.length ? `^(${titles.map(escape).join('|')})( \\[repeat \\d+/\\d+\\])?$` : '', files };
}
