// A VM topology with its soft RDMA transport swapped (rxe ↔ siw): the matrix's transport axis runs
// the same lab, bonds and workloads over soft RoCE and soft iWARP, so a failure on one transport
// only is the transport's, and one on both is the ULP's (or the kernel's).
import { isAbsolute, resolve, dirname } from 'node:path';
import { stringify } from 'yaml';
import { softRdma } from '../fabric/fabric.ts';
import type { LinkType, Topology } from './schema.ts';

export type SoftTransport = 'rxe' | 'siw';
export const SOFT_TRANSPORTS: readonly SoftTransport[] = ['rxe', 'siw'];

export function parseTransports(list: string): SoftTransport[] {
  const out = list.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = out.filter((t) => !SOFT_TRANSPORTS.includes(t as SoftTransport));
  if (bad.length || !out.length) throw new Error(`--transports takes ${SOFT_TRANSPORTS.join(', ')} (got "${list}")`);
  return [...new Set(out)] as SoftTransport[];
}

/** Every bond slave link type of a topology (rxe, siw, roce, ipoib), each once. */
export function linkTypesOf(t: Topology): LinkType[] {
  return [...new Set(t.nodes.flatMap((n) => (n.bonds ?? []).flatMap((b) => b.slaves.map((s) => s.link))))];
}

/** The soft transports a topology's bonds carry now. */
export function transportsOf(t: Topology): SoftTransport[] {
  return [...new Set(t.nodes.flatMap((n) => (n.bonds ?? []).map((b) => softRdma(b)).filter((x): x is SoftTransport => x !== undefined)))];
}

/** The same topology over `to`: every soft-RDMA bond's slaves and rdma device switched, the lab
 *  renamed (a different lab: its own namespace, state and journals), file paths made absolute. */
export function withTransport(t: Topology, to: SoftTransport, file: string): Topology {
  if (t.kind !== 'vm') throw new Error('a transport axis changes a VM lab\'s soft RDMA device: it needs a kind: vm topology');
  const from = transportsOf(t);
  if (!from.length) throw new Error(`topology ${t.name} has no bond with a soft RDMA device (rxe or siw) to switch`);
  const out = structuredClone(t);
  for (const n of out.nodes) {
    for (const b of n.bonds ?? []) {
      const cur = softRdma(b);
      if (!cur) continue;
      for (const s of b.slaves) s.link = to;
      if (b.rdma) b.rdma = { ...b.rdma, type: to, ...(b.rdma.name ? { name: b.rdma.name.replace(cur, to) } : {}) };
    }
  }
  const cur = from[0]!;
  if (cur !== to) out.name = t.name.includes(cur) ? t.name.replace(cur, to) : `${t.name}-${to}`;
  if (cur !== to && out.description) out.description = `${out.description} [transport switched to ${to} by the matrix]`;
  const k = out.vm?.kernel;
  if (k && typeof k === 'object') {
    const base = dirname(resolve(file));
    out.vm!.kernel = { ...k, image: isAbsolute(k.image) ? k.image : resolve(base, k.image), modules: isAbsolute(k.modules) ? k.modules : resolve(base, k.modules) };
  }
  return out;
}

export function topologyYaml(t: Topology, note: string): string {
  return `# ${note}\n${stringify(t)}`;
}
