// What the suites will need on each node, what is missing, and how to fix it.
// Facts come from structured sources: modinfo + /sys/module, `rdma -j`, `ip -d -j link`.
import { allUlps } from '../ulp/registry.ts';
import type { Lab } from '../lab/lab.ts';
import type { Node } from '../node/node.ts';
import { measureClockOffset, type ClockOffset } from '../node/clock-offset.ts';
import type { TopologyNode } from '../topology/schema.ts';
import { parseRdmaDevices, parseRdmaLinks, type RdmaLink, type RdmaDevice } from '../fabric/rdma.ts';
import { parseBondLinks, type BondState } from '../fabric/bond.ts';
import { LocalNode } from '../node/local.ts';
import { showCommand } from '../lab/real.ts';

export type CheckStatus = 'ok' | 'warn' | 'fail' | 'info';

export interface Check {
  id: string;
  title: string;
  status: CheckStatus;
  detail: string;
  fix?: string;
  /** which suites need it; a missing optional item makes those suites skip */
  neededBy?: string;
}

export interface NodeDoctor {
  node: string;
  address: string;
  reachable: boolean;
  error?: string;
  kernel?: string;
  rdmaDevices: RdmaDevice[];
  rdmaLinks: RdmaLink[];
  bonds: BondState[];
  clock?: ClockOffset;
  checks: Check[];
}

export interface DoctorReport {
  topology: string;
  kind: 'real' | 'vm';
  /** the lab's powers beyond SSH */
  capabilities: Check[];
  nodes: NodeDoctor[];
  ok: boolean;
}

interface ModuleNeed {
  name: string;
  required: boolean;
  neededBy: string;
}

const TOOLS: { name: string; pkg: string; required: boolean; neededBy: string }[] = [
  { name: 'ip', pkg: 'iproute2', required: true, neededBy: 'everything' },
  { name: 'rdma', pkg: 'iproute2', required: true, neededBy: 'fabric, monitors' },
  { name: 'modprobe', pkg: 'kmod', required: true, neededBy: 'fabric' },
  { name: 'bash', pkg: 'bash', required: false, neededBy: 'clock alignment (falls back to date)' },
  { name: 'rping', pkg: 'rdmacm-utils', required: false, neededBy: 'UL-RPING-01, rdma-cm suite' },
  { name: 'ucmatose', pkg: 'rdmacm-utils', required: false, neededBy: 'rdma-cm suite' },
  { name: 'tcpdump', pkg: 'tcpdump', required: false, neededBy: 'GARP monitor (BC-06)' },
  // Each ULP's tools, from its module (harness/ulp/).
  ...allUlps().flatMap((u) => u.tools.map((t) => ({ name: t.name, pkg: t.pkg, required: false, neededBy: `${u.planId} ${t.neededBy}` }))),
];

function moduleNeeds(spec: TopologyNode | undefined): ModuleNeed[] {
  const links = new Set((spec?.bonds ?? []).flatMap((b) => b.slaves.map((s) => s.link)));
  const needs: ModuleNeed[] = [
    { name: 'bonding', required: true, neededBy: 'every failover test' },
    { name: 'rdma_cm', required: true, neededBy: 'every RDMA CM ULP' },
    { name: 'rdma_ucm', required: true, neededBy: 'rping, RDS tool (user-space RDMA CM)' },
  ];
  if (links.has('rxe')) needs.push({ name: 'rdma_rxe', required: true, neededBy: 'soft RoCE over the bond' });
  if (links.has('siw')) needs.push({ name: 'siw', required: true, neededBy: 'soft iWARP over the bond' });
  if (links.has('ipoib')) needs.push({ name: 'ib_ipoib', required: true, neededBy: 'IPoIB slaves' });
  for (const u of allUlps()) for (const m of u.modules) if (!needs.some((n) => n.name === m.name)) needs.push({ name: m.name, required: false, neededBy: `${u.planId} ${m.neededBy}` });
  return needs;
}

// Static script; module names arrive as arguments. Prints "name|file-or-builtin|loaded".
const MODULE_PROBE = `for m in "$@"; do
  f=$(modinfo -F filename "$m" 2>/dev/null | head -n1)
  l=0; [ -d "/sys/module/$m" ] && l=1
  echo "$m|$f|$l"
done`;
const TOOL_PROBE = 'for t in "$@"; do if command -v "$t" >/dev/null 2>&1; then echo "$t|1"; else echo "$t|0"; fi; done';

async function examine(node: Node, spec: TopologyNode | undefined): Promise<NodeDoctor> {
  const out: NodeDoctor = { node: node.name, address: node.address, reachable: false, rdmaDevices: [], rdmaLinks: [], bonds: [], checks: [] };
  const add = (c: Check) => out.checks.push(c);
  try {
    out.kernel = (await node.run(['uname', '-r'], { timeoutMs: 20_000 })).stdout.trim();
    out.reachable = true;
  } catch (e) {
    out.error = (e as Error).message;
    add({ id: 'reach', title: 'reachable', status: 'fail', detail: out.error, fix: 'check the access section of the topology, sshd, and the host key' });
    return out;
  }
  add({ id: 'kernel', title: 'kernel', status: 'info', detail: out.kernel });
  const needs = moduleNeeds(spec);
  const [mods, tools, devs, links, bonds, clock] = await Promise.allSettled([
    node.run(['sh', '-c', MODULE_PROBE, 'probe', ...needs.map((n) => n.name)], { timeoutMs: 30_000 }),
    node.run(['sh', '-c', TOOL_PROBE, 'probe', ...TOOLS.map((t) => t.name)], { timeoutMs: 20_000 }),
    node.exec(['rdma', '-j', 'dev', 'show'], { timeoutMs: 20_000 }),
    node.exec(['rdma', '-j', 'link', 'show'], { timeoutMs: 20_000 }),
    node.exec(['ip', '-d', '-j', 'link', 'show'], { timeoutMs: 20_000 }),
    measureClockOffset(node),
  ]);

  if (mods.status === 'fulfilled') {
    for (const line of mods.value.stdout.trim().split('\n').filter(Boolean)) {
      const [name = '', file = '', loaded = '0'] = line.split('|');
      const need = needs.find((n) => n.name === name);
      const builtin = file === '(builtin)';
      const available = builtin || file.length > 0;
      const isLoaded = loaded === '1' || builtin;
      const status: CheckStatus = available ? 'ok' : need?.required ? 'fail' : 'warn';
      add({
        id: `module:${name}`,
        title: `module ${name}`,
        status,
        detail: available ? `${builtin ? 'built in' : 'available'}${isLoaded ? ', loaded' : ', not loaded (the fabric loads it)'}` : 'not available in this kernel',
        ...(available ? {} : { fix: `build the kernel with the option for ${name} (as a module), or install the kernel's extra modules package` }),
        ...(need ? { neededBy: need.neededBy } : {}),
      });
    }
  } else add({ id: 'modules', title: 'kernel modules', status: 'fail', detail: String(mods.reason) });

  if (tools.status === 'fulfilled') {
    for (const line of tools.value.stdout.trim().split('\n').filter(Boolean)) {
      const [name = '', has = '0'] = line.split('|');
      const t = TOOLS.find((x) => x.name === name);
      add({
        id: `tool:${name}`,
        title: `tool ${name}`,
        status: has === '1' ? 'ok' : t?.required ? 'fail' : 'warn',
        detail: has === '1' ? 'found' : 'missing',
        ...(has === '1' || !t ? {} : { fix: `apt-get install ${t.pkg}` }),
        ...(t ? { neededBy: t.neededBy } : {}),
      });
    }
  }

  if (devs.status === 'fulfilled' && devs.value.exitCode === 0) out.rdmaDevices = parseRdmaDevices(devs.value.stdout);
  if (links.status === 'fulfilled' && links.value.exitCode === 0) out.rdmaLinks = parseRdmaLinks(links.value.stdout);
  add({
    id: 'rdma:devices',
    title: 'RDMA devices',
    status: out.rdmaDevices.length ? 'ok' : 'info',
    detail: out.rdmaDevices.length
      ? out.rdmaLinks.map((l) => `${l.ifname}/${l.port} ${l.state}${l.netdev ? ` on ${l.netdev}` : ''}`).join(', ') || out.rdmaDevices.map((d) => d.ifname).join(', ')
      : 'none yet (rxe and siw labs get one from `fabric up`)',
  });
  if (bonds.status === 'fulfilled' && bonds.value.exitCode === 0) out.bonds = parseBondLinks(bonds.value.stdout);
  for (const want of spec?.bonds ?? []) {
    const have = out.bonds.find((b) => b.name === want.name);
    add({
      id: `bond:${want.name}`,
      title: `bond ${want.name}`,
      status: 'info',
      detail: have
        ? `${have.mode}, active ${have.activeSlave ?? 'none'}, fail_over_mac ${have.failOverMac}, slaves ${have.slaves.join(', ') || 'none'}`
        : 'not configured yet (`fabric up` builds it)',
    });
  }
  if (clock.status === 'fulfilled') {
    out.clock = clock.value;
    add({
      id: 'clock',
      title: 'clock offset',
      status: 'info',
      detail: `${clock.value.offsetMs >= 0 ? '+' : ''}${clock.value.offsetMs.toFixed(1)} ms ± ${clock.value.boundMs.toFixed(1)} ms against the controller`,
    });
  } else add({ id: 'clock', title: 'clock offset', status: 'warn', detail: `not measured: ${(clock.reason as Error).message}` });
  return out;
}

/** How this lab cuts each slave's carrier: the faults of every failover test go through it. */
async function carrierChecks(lab: Lab, spec: TopologyNode | undefined): Promise<Check[]> {
  const out: Check[] = [];
  for (const b of spec?.bonds ?? []) {
    for (const s of b.slaves) {
      const id = `carrier:${b.name}/${s.name}`;
      const title = `carrier of ${s.name}`;
      if (lab.kind === 'vm') {
        out.push({ id, title, status: 'ok', detail: lab.carrier?.method ?? 'VM lab' });
        continue;
      }
      if (!s.carrier) {
        out.push({ id, title, status: 'warn', detail: 'no carrier commands in the topology', fix: `add carrier: { down: [...], up: [...] } to ${s.name} (a switch CLI, a PDU, ibportstate)`, neededBy: 'every carrier-loss test (skipped without it)' });
        continue;
      }
      // The program must exist where it runs (the controller, or the node the topology names).
      const where = s.carrier.node ? lab.node(s.carrier.node) : new LocalNode('controller');
      const progs = [...new Set([s.carrier.down[0]!, s.carrier.up[0]!].map((a) => (typeof a === 'string' ? a : `$${a.env}`)))];
      const r = await where.exec(['sh', '-c', TOOL_PROBE, 'probe', ...progs], { timeoutMs: 20_000 }).catch((e: Error) => ({ stdout: '', stderr: e.message, exitCode: 1 }));
      const missing = progs.filter((p) => !r.stdout.includes(`${p}|1`));
      out.push({
        id,
        title,
        status: missing.length ? 'fail' : 'ok',
        detail: missing.length
          ? `${missing.join(', ')} not found on ${s.carrier.node ?? 'the controller'}`
          : `down: ${showCommand(s.carrier.down)}; up: ${showCommand(s.carrier.up)} (on ${s.carrier.node ?? 'the controller'})`,
        ...(missing.length ? { fix: 'install the program, or correct the carrier commands' } : {}),
        neededBy: 'every carrier-loss test',
      });
    }
  }
  return out;
}

/** What the lab can do beyond SSH: tests that need a power it lacks are skipped, with this reason. */
function capabilityChecks(lab: Lab): Check[] {
  const c = (id: string, title: string, has: boolean, yes: string, no: string, neededBy: string): Check => ({ id, title, status: has ? 'ok' : 'info', detail: has ? yes : no, neededBy });
  return [
    c('cap:switch-ports', 'switch port control', !!lab.switchPorts, 'yes (silent path loss without carrier change)', 'no (a real lab does not claim it)', 'silent path death tests (skipped without it)'),
    c('cap:machines', 'machine control', !!lab.machines, 'yes (pause, reboot, serial console)', 'no (a real node is never rebooted by the harness)', 'frozen-node and fresh-node tests (skipped without it)'),
  ];
}

export async function runDoctor(lab: Lab): Promise<DoctorReport> {
  const nodes = await Promise.all(
    [...lab.nodes.values()].map(async (n) => {
      const spec = lab.loaded.topology.nodes.find((s) => s.name === n.name);
      const d = await examine(n, spec);
      d.checks.push(...(await carrierChecks(lab, spec)));
      return d;
    }),
  );
  return { topology: lab.loaded.file, kind: lab.kind, capabilities: capabilityChecks(lab), nodes, ok: nodes.every((n) => n.reachable && n.checks.every((c) => c.status !== 'fail')) };
}
