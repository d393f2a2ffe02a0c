// run --labs N: N independent VM labs on one controller, the selected tests spread over them (one
// shard each), one merged report. Each lab is the topology under another name — the name keys its
// network namespace, taps, MACs, SSH ports, state directory and journals — so two labs (or two
// runs) never touch each other's.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { parseDocument } from 'yaml';

/** Writes the topology N times under the names NAME-1 … NAME-N; returns the files. */
export function labCopies(topologyFile: string, n: number): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'rf-labs-'));
  const text = readFileSync(topologyFile, 'utf8');
  return Array.from({ length: n }, (_, i) => {
    const doc = parseDocument(text);
    const name = String(doc.get('name'));
    if (doc.get('kind') !== 'vm') throw new Error(`--labs boots VM labs: ${topologyFile} is a kind: ${String(doc.get('kind'))} topology`);
    doc.set('name', `${name}-${i + 1}`);
    // SSH ports are taken free at boot unless the topology pins them: pinned ports would clash.
    const vm = doc.get('vm') as { delete?: (k: string) => void } | undefined;
    vm?.delete?.('ssh_port_base');
    const file = join(dir, `${basename(topologyFile, '.yaml')}-${i + 1}.yaml`);
    writeFileSync(file, doc.toString());
    return file;
  });
}

/** The exit status of several runs: interrupted, then news, then known-only, else 0. */
export function combinedExit(codes: readonly number[]): number {
  if (codes.includes(130)) return 130;
  if (codes.some((c) => c !== 0 && c !== 3)) return 1;
  return codes.includes(3) ? 3 : 0;
}
