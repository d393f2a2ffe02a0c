// The environment fingerprint of each node, for the report: what exactly was certified.
import type { Lab } from '../lab/lab.ts';
import { allUlps } from '../ulp/registry.ts';
import { readBond } from '../fabric/bond.ts';
import { measureClockOffset } from '../node/clock-offset.ts';
import type { NodeEnvironment } from './schema.ts';

// The fabric's modules, then every ULP's (harness/ulp/).
const MODULES = [...new Set(['bonding', 'ib_core', 'rdma_cm', 'rdma_rxe', 'siw', 'ib_ipoib', 'mlx5_core', 'mlx5_ib', ...allUlps().flatMap((u) => u.modules.map((m) => m.name))])];
const PARAM_MODULES = [...new Set(['bonding', 'ib_ipoib', 'rdma_rxe', ...allUlps().flatMap((u) => u.paramModules ?? [])])];

// Static script; module names are arguments. Sections separated by "@@ name".
const SCRIPT = `echo "@@ kernel"; uname -r
echo "@@ modules"
k=$(uname -r)
for m in $MODULES; do
  f=$(modinfo -F filename "$m" 2>/dev/null | head -n1); [ -n "$f" ] || continue
  v=$(modinfo -F version "$m" 2>/dev/null | head -n1); [ -n "$v" ] || v=$(modinfo -F srcversion "$m" 2>/dev/null | head -n1)
  case "$f" in "/lib/modules/$k/kernel/"*|"(builtin)") w="in-tree $k";; *) w="out-of-tree $f";; esac
  echo "$m=\${v:+$v }($w)"
done
echo "@@ params"
for m in $PARAMS; do for p in /sys/module/$m/parameters/*; do [ -r "$p" ] && echo "$m.$(basename "$p")=$(cat "$p" 2>/dev/null)"; done; done
echo "@@ rdmacore"
dpkg-query -W -f '\${Version}\\n' rdma-core 2>/dev/null || rpm -q --qf '%{VERSION}-%{RELEASE}\\n' rdma-core 2>/dev/null || true
echo "@@ ibv"
ibv_devinfo -v 2>/dev/null | grep -E '^hca_id:|^[[:space:]]+(fw_ver|board_id|vendor_part_id|node_guid):' || true`;

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
        env.modules = kv('modules');
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
