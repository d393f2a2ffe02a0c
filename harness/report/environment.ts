// The environment fingerprint of each node, for the report: what exactly was certified.
import type { Lab } from '../lab/lab.ts';
import { allUlps } from '../ulp/registry.ts';
import { readBond } from '../fabric/bond.ts';
import { measureClockOffset } from '../node/clock-offset.ts';
import type { NodeEnvironment } from './schema.ts';

// The fabric's modules, then every ULP's (harness/ulp/).
const MODULES = [...new Set(['bonding', 'ib_core', 'rdma_cm', 'rdma_rxe', 'siw', 'ib_ipoib', 'mlx5_core', 'mlx5_ib', ...allUlps().flatMap((u) => u.modules.map((m) => m.name))])];
const PARAM_MODULES = [...new Set(['bonding', 'ib_ipoib', 'rdma_rxe', ...allUlps().flatMap((u) => u.paramModules ?? [])])];

// Static script; module names are arguments. Sections separated by "@@ name". One modinfo for every
// module, parsed here (moduleInfo): a modinfo and a head per module and field took 10-15 s on a TCG
// guest at the start of every run; and the parameters are read with the shell's own read, not a cat
// each (sysfs attributes answer a read at any offset).
const SCRIPT = `echo "@@ kernel"; uname -r
echo "@@ modinfo"
modinfo $MODULES 2>/dev/null
echo "@@ params"
for m in $PARAMS; do for p in /sys/module/$m/parameters/*; do [ -r "$p" ] || continue; v=; read -r v < "$p" 2>/dev/null; echo "$m.\${p##*/}=$v"; done; done
echo "@@ rdmacore"
dpkg-query -W -f '\${Version}\\n' rdma-core 2>/dev/null || rpm -q --qf '%{VERSION}-%{RELEASE}\\n' rdma-core 2>/dev/null || true
echo "@@ ibv"
ibv_devinfo -v 2>/dev/null | grep -E '^hca_id:|^[[:space:]]+(fw_ver|board_id|vendor_part_id|node_guid):' || true`;

/** Module names as the kernel spells them (modinfo and /sys/module use "_" where a name may say "-"). */
const modName = (m: string) => m.replace(/-/g, '_');

/**
 * One `modinfo a b c …` output → each wanted module's "version (in-tree R)" or "(out-of-tree path)".
 * modinfo prints a block per module it found, each opening with its filename ("(builtin)" for a
 * built-in one), and skips the ones it did not; a block is matched by its name field (or its file's
 * name), never by its place.
 */
export function moduleInfo(text: string, wanted: readonly string[], release: string): Record<string, string> {
  const blocks: Map<string, string>[] = [];
  for (const line of text.split('\n')) {
    const m = /^([\w.-]+):\s*(.*)$/.exec(line);
    if (!m) continue;
    if (m[1] === 'filename') blocks.push(new Map());
    const b = blocks[blocks.length - 1];
    if (b && !b.has(m[1]!)) b.set(m[1]!, m[2]!.trim());
  }
  const byName = new Map<string, Map<string, string>>();
  for (const b of blocks) {
    const file = b.get('filename') ?? '';
    const name = b.get('name') ?? /([^/]+)\.ko(\.\w+)?$/.exec(file)?.[1];
    if (name && !byName.has(modName(name))) byName.set(modName(name), b);
  }
  const out: Record<string, string> = {};
  for (const m of wanted) {
    const b = byName.get(modName(m));
    const f = b?.get('filename');
    if (!b || !f) continue;
    const v = b.get('version') || b.get('srcversion') || '';
    const where = f.startsWith(`/lib/modules/${release}/kernel/`) || f === '(builtin)' ? `in-tree ${release}` : `out-of-tree ${f}`;
    out[m] = `${v ? `${v} ` : ''}(${where})`;
  }
  return out;
}

export async function collectEnvironment(lab: Lab): Promise<NodeEnvironment[]> {
  const nodes = [...lab.nodes.values()];
  return Promise.all(
    nodes.map(async (node) => {
      const env: NodeEnvironment = { node: node.name, address: node.address, kernel: 'unknown' };
      try {
        const r = await node.run(['sh', '-c', SCRIPT, 'environment'], { env: { MODULES: MODULES.join(' '), PARAMS: PARAM_MODULES.join(' ') }, timeoutMs: 60_000 });
        const sections = new Map<string, string[]>();
        let cur = '';
        for (const line of r.stdout.split('\n')) {
          const m = /^@@ (\w+)$/.exec(line);
          if (m) sections.set((cur = m[1]!), []);
          else if (line.trim() && cur) sections.get(cur)!.push(line);
        }
        env.kernel = sections.get('kernel')?.[0]?.trim() ?? 'unknown';
        const kv = (s: string) => Object.fromEntries((sections.get(s) ?? []).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
        env.modules = moduleInfo((sections.get('modinfo') ?? []).join('\n'), MODULES, env.kernel);
        env.moduleParams = kv('params');
        const rc = sections.get('rdmacore')?.[0];
        if (rc) env.rdmaCore = rc;
        const hcas: NonNullable<NodeEnvironment['hcas']> = [];
        for (const l of sections.get('ibv') ?? []) {
          const m = /^\s*(hca_id|fw_ver|board_id|vendor_part_id|node_guid):\s*(\S+)/.exec(l);
          if (!m) continue;
          if (m[1] === 'hca_id') hcas.push({ device: m[2]! });
          const h = hcas[hcas.length - 1];
          if (!h) continue;
          if (m[1] === 'fw_ver') h.firmware = m[2]!;
          if (m[1] === 'board_id') h.psid = m[2]!;
          if (m[1] === 'vendor_part_id') h.model = m[2]!;
          if (m[1] === 'node_guid') h.nodeGuid = m[2]!;
        }
        env.hcas = hcas;
      } catch (e) {
        env.kernel = `unreachable: ${(e as Error).message}`;
        return env;
      }
      const spec = lab.loaded.topology.nodes.find((n) => n.name === node.name);
      env.bonds = [];
      for (const b of spec?.bonds ?? []) {
        try {
          const s = await readBond(node, b.name);
          env.bonds.push({ name: b.name, mode: s.mode, failOverMac: s.failOverMac, miimon: s.miimon, numGratArp: s.numGratArp, slaves: s.slaves, type: s.type });
        } catch {
          env.bonds.push({ name: b.name });
        }
      }
      try {
        const c = await measureClockOffset(node, 5);
        env.clock = { offsetMs: Math.round(c.offsetMs * 10) / 10, boundMs: Math.round(c.boundMs * 10) / 10 };
      } catch {
        // no clock figure
      }
      return env;
    }),
  );
}
