// Topology file → a Lab of the right kind.
import { loadTopology, type LoadedTopology } from '../topology/load.ts';
import { formatIssue } from '../topology/issues.ts';
import { RealLab } from '../lab/real.ts';
import type { Lab } from '../lab/lab.ts';

export const DEFAULT_TOPOLOGY = 'topologies/vm-rxe.yaml';

export function loadOrExit(file: string): LoadedTopology {
  const loaded = loadTopology(file);
  for (const w of loaded.warnings) process.stderr.write(`${formatIssue(w)}\n`);
  return loaded;
}

export async function openLab(loaded: LoadedTopology): Promise<Lab> {
  if (loaded.topology.kind === 'real') return new RealLab(loaded);
  const { attachVmLab } = await import('../vmlab/vm-lab.ts');
  return attachVmLab(loaded);
}
