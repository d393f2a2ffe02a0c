// Parsers for lnetctl's YAML output (lnet/utils/lnetconfig/liblnetconfig.c builds it with cYAML):
//   lnetctl ping NID            → ping: [{ primary nid, Multi-Rail, peer ni: [{ nid }] }]
//   lnetctl net show -v 3       → net: [{ net type, local NI(s): [{ nid, status, interfaces, health stats }] }]
//   lnetctl peer show -v 3      → peer: [{ primary nid, Multi-Rail, peer ni: [{ nid, state, health stats }] }]
// A failed command prints an error document instead (e.g. "manage: - ping: errno: … descr: …").
import { parse } from 'yaml';

export interface LnetLocalNi {
  net: string;
  nid: string;
  status: string;
  interfaces: string[];
  health?: number;
}

export interface LnetPeerNi {
  primaryNid: string;
  nid: string;
  state?: string;
  health?: number;
}

type Doc = Record<string, unknown>;

function load(text: string): Doc {
  const d = parse(text) as unknown;
  return d && typeof d === 'object' ? (d as Doc) : {};
}

const list = (x: unknown): Doc[] => (Array.isArray(x) ? (x.filter((i) => i && typeof i === 'object') as Doc[]) : []);
const str = (x: unknown): string => (typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean' ? String(x) : '');
const num = (x: unknown): number | undefined => (typeof x === 'number' ? x : typeof x === 'string' && /^-?\d+$/.test(x) ? Number(x) : undefined);

/** What an error document says (lnetctl prints errno and descr), or undefined if there is none. */
export function lnetError(text: string): string | undefined {
  const d = load(text);
  for (const section of Object.values(d)) {
    for (const item of list(section)) {
      for (const v of Object.values(item)) {
        if (v && typeof v === 'object' && 'errno' in v) {
          const e = v as Doc;
          if (num(e.errno) !== 0) return `errno ${str(e.errno)}: ${str(e.descr)}`.trim();
        }
      }
    }
  }
  return undefined;
}

/** `lnetctl ping NID`: the NIDs the peer answered with (none when the ping failed). */
export function parsePing(text: string): { primaryNid?: string; nids: string[] } {
  const first = list(load(text).ping)[0];
  if (!first) return { nids: [] };
  return { ...(typeof first['primary nid'] === 'string' ? { primaryNid: first['primary nid'] } : {}), nids: list(first['peer ni']).map((p) => str(p.nid)) };
}

/** `lnetctl net show -v 3`: every local NI with its status and health value. */
export function parseNetShow(text: string): LnetLocalNi[] {
  return list(load(text).net).flatMap((n) =>
    list(n['local NI(s)']).map((ni) => {
      const h = ni['health stats'] as Doc | undefined;
      const ifs = ni.interfaces && typeof ni.interfaces === 'object' ? Object.values(ni.interfaces as Doc).map(str) : [];
      const health = num(h?.['health value']);
      return { net: str(n['net type']), nid: str(ni.nid), status: str(ni.status), interfaces: ifs, ...(health !== undefined ? { health } : {}) };
    }),
  );
}

/** `lnetctl peer show -v 3`: every peer NI with its state and health value. */
export function parsePeerShow(text: string): LnetPeerNi[] {
  return list(load(text).peer).flatMap((p) =>
    list(p['peer ni']).map((ni) => {
      const h = ni['health stats'] as Doc | undefined;
      const health = num(h?.['health value']);
      return { primaryNid: str(p['primary nid']), nid: str(ni.nid), ...(ni.state !== undefined ? { state: str(ni.state) } : {}), ...(health !== undefined ? { health } : {}) };
    }),
  );
}

/** LNet's full health value (lnet/include/lnet/lib-types.h LNET_MAX_HEALTH_VALUE). */
export const LNET_MAX_HEALTH = 1000;
