// Fabric bring-up from the topology: the bond built the way the kernel requires for IPoIB slaves
// (through sysfs; active-backup and fail_over_mac set before any slave; slaves enslaved while
// the bond is down; slaves' own addresses never touched), addressed, with an RDMA link on top.
// The same code runs on the VM lab and on real labs: it only uses the Node interface.
// What it changes is recorded first, so `fabric down` restores what was there before.
import { now, sleep, waitFor } from '../clock.ts';
import { clearJournal, readJournal, writeJournal } from '../journal.ts';
import type { Lab } from '../lab/lab.ts';
import type { Node } from '../node/node.ts';
import { withBondDefaults } from '../topology/defaults.ts';
import type { BondSpec, Topology, TopologyNode } from '../topology/schema.ts';
import { parseCidr } from '../net/ip.ts';
import { nodeBatch } from './sysfs.ts';
import { parseBondSysfs, SYSFS_READ, type BondSysfs } from './bond.ts';
import { parseRdmaLinks, type RdmaLink } from './rdma.ts';
import { BASELINE, modulesToLoad, parseBaseline, unloadAppeared, unloadModules, type ModuleBaseline } from '../workload/modules.ts';

export interface SlaveRecord {
  name: string;
  wasUp: boolean;
  mtu: number;
}

export interface BondRecord {
  name: string;
  /** false when the bond already existed: fabric down leaves it alone */
  created: boolean;
  address: string;
  slaves: SlaveRecord[];
  rdmaLink?: string;
}

export interface NodeFabricRecord {
  node: string;
  modulesLoaded: string[];
  /** the node's modules before the harness loaded any: at fabric down, unused ones that appeared since go too */
  modulesBefore?: ModuleBaseline;
  bonds: BondRecord[];
}

export interface FabricRecord {
  topology: string;
  startedAt: string;
  nodes: NodeFabricRecord[];
}

/** Persists a record as it grows (the restore journal); supplied by the caller. */
export type Journal = (r: FabricRecord) => void;

const BASE_MODULES = ['bonding', 'ib_core', 'ib_uverbs', 'rdma_cm', 'rdma_ucm'];

function linkModules(spec: TopologyNode): string[] {
  const links = new Set((spec.bonds ?? []).flatMap((b) => b.slaves.map((s) => s.link)));
  const m: string[] = [];
  if (links.has('rxe')) m.push('rdma_rxe');
  if (links.has('siw')) m.push('siw');
  if (links.has('ipoib')) m.push('ib_ipoib');
  return m;
}

/** `before`: the node's module baseline, just read (a VM guest has loaded these while it booted). */
async function ensureModules(node: Node, wanted: string[], before: ModuleBaseline, rec: NodeFabricRecord, journal: () => void): Promise<void> {
  const load = await modulesToLoad(node, wanted, new Set(before.modules));
  if (!load.length) return;
  // Record first (with the dependencies modprobe will pull in): if modprobe half-succeeds, fabric
  // down still removes them — by name, never a module that was there before.
  rec.modulesLoaded.push(...load);
  journal();
  const missing = wanted.filter((m) => load.includes(m));
  // max_bonds=0: no automatic bond0 — bonds are created explicitly through sysfs.
  if (missing.includes('bonding')) await node.run(['modprobe', 'bonding', 'max_bonds=0'], { timeoutMs: 60_000 });
  const rest = missing.filter((m) => m !== 'bonding');
  if (rest.length) await node.run(['modprobe', '-a', ...rest], { timeoutMs: 120_000 });
}

export const sysfsBond = (bond: string, attr: string) => `/sys/class/net/${bond}/bonding/${attr}`;

/** The bond options in the order the kernel needs them (mode and fail_over_mac before slaves). */
export function bondOptionWrites(b: BondSpec): [string, string][] {
  const o = withBondDefaults(b);
  const w: [string, string][] = [
    ['mode', o.mode],
    ['fail_over_mac', o.fail_over_mac],
    ['miimon', String(o.miimon)],
  ];
  if (o.updelay !== undefined) w.push(['updelay', String(o.updelay)]);
  if (o.downdelay !== undefined) w.push(['downdelay', String(o.downdelay)]);
  w.push(['num_grat_arp', String(o.num_grat_arp)]);
  if (o.peer_notify_delay !== undefined) w.push(['peer_notify_delay', String(o.peer_notify_delay)]);
  if (o.arp_interval !== undefined) w.push(['arp_interval', String(o.arp_interval)]);
  for (const t of o.arp_ip_target ?? []) w.push(['arp_ip_target', `+${t}`]);
  if (o.arp_validate !== undefined) w.push(['arp_validate', o.arp_validate]);
  if (o.primary_reselect !== undefined) w.push(['primary_reselect', o.primary_reselect]);
  return w;
}

// What the build needs to know first, in one round trip with the module baseline: the boot id and
// loaded modules (BASELINE's lines), then per bond ($1 bond, $2 slave count, the slaves…) whether it
// exists and, for each slave, "name|exists|operstate|flags|mtu|master".
const BEFORE_READ = `{ ${BASELINE}; } || exit 1
while [ $# -gt 0 ]; do
  bond=$1; n=$2; shift 2
  echo "rf-bond $bond"
  [ -e "/sys/class/net/$bond" ] && echo "bond-exists"
  for s in "\${@:1:$n}"; do
    d=/sys/class/net/$s
    if [ -e "$d" ]; then
      # builtins only: a fork costs 20–50 ms on a TCG guest just after boot
      m=; [ -e "$d/master" ] && m=$(cd -P "$d/master" && echo "\${PWD##*/}")
      o=; f=; u=; read -r o < "$d/operstate"; read -r f < "$d/flags"; read -r u < "$d/mtu"
      echo "$s|1|$o|$f|$u|$m"
    else echo "$s|0|||0|"; fi
  done
  shift "$n"
done`;

export interface NodeBefore {
  baseline: ModuleBaseline;
  /** bond → the output lines about it */
  bonds: Map<string, string[]>;
}

export async function readBefore(node: Node, bonds: readonly BondSpec[]): Promise<NodeBefore> {
  const r = await node.run(['bash', '-c', BEFORE_READ, 'fabric-before', ...bonds.flatMap((b) => [b.name, String(b.slaves.length), ...b.slaves.map((s) => s.name)])], { timeoutMs: 15_000 });
  const [head = '', ...rest] = r.stdout.split(/^rf-bond /m);
  const out: NodeBefore = { baseline: parseBaseline(head), bonds: new Map() };
  for (const part of rest) {
    const [name = '', ...lines] = part.split('\n');
    out.bonds.set(name.trim(), lines.map((l) => l.trim()).filter(Boolean));
  }
  return out;
}

/** Builds the bond (and its soft RDMA link) in one round trip; returns `rdma link show` after it. */
async function buildBond(node: Node, b: BondSpec, probe: readonly string[], rec: NodeFabricRecord, journal: () => void): Promise<RdmaLink[]> {
  const br: BondRecord = { name: b.name, created: false, address: b.address, slaves: [] };
  rec.bonds.push(br);
  if (probe.includes('bond-exists')) {
    throw new Error(`${node.name}: ${b.name} already exists; run \`fabric down\` first or remove it (the harness builds bonds itself so it knows their options)`);
  }
  for (const line of probe.filter((l) => l.includes('|'))) {
    const [name = '', ok, , flags = '0', mtu = '0', master] = line.split('|');
    if (ok !== '1') throw new Error(`${node.name}: slave ${name} does not exist`);
    if (master) throw new Error(`${node.name}: ${name} is already enslaved to ${master}`);
    // IFF_UP is bit 0 of the flags
    br.slaves.push({ name, wasUp: (Number(flags) & 1) === 1, mtu: Number(mtu) });
  }
  // Journaled before anything is made: fabric down removes only what exists of it.
  br.created = true;
  const soft = softRdma(b);
  if (soft) br.rdmaLink = b.rdma?.name ?? `${soft}_${b.name}`;
  journal();
  // mode and fail_over_mac must be set before the first slave; the kernel refuses to enslave a
  // device that is up, and the bond stays down until every slave is in.
  const out = await nodeBatch(node, [
    { write: [['/sys/class/net/bonding_masters', `+${b.name}`], ...bondOptionWrites(b).map(([a, v]) => [sysfsBond(b.name, a), v] as const)] },
    { ip: [...(b.mtu ? [['link', 'set', 'dev', b.name, 'mtu', String(b.mtu)]] : []), ...b.slaves.map((s) => ['link', 'set', 'dev', s.name, 'down'])] },
    { write: [...b.slaves.map((s) => [sysfsBond(b.name, 'slaves'), `+${s.name}`] as const), ...(b.primary ? [[sysfsBond(b.name, 'primary'), b.primary] as const] : [])] },
    { ip: [['link', 'set', 'dev', b.name, 'up'], ['addr', 'add', b.address, 'dev', b.name]] },
    ...(soft && br.rdmaLink ? [{ run: ['rdma', 'link', 'add', br.rdmaLink, 'type', soft, 'netdev', b.name] }] : []),
    { run: ['rdma', '-j', 'link', 'show'] },
  ]);
  return parseRdmaLinks(out);
}

/** The MAC in an iWARP GID as sysfs prints it ("5254:42ad:0101:0000:…" → "52:54:42:ad:01:01"). */
export function macOfIwarpGid(gid: string): string {
  const hex = gid.trim().replace(/:/g, '').slice(0, 12).toLowerCase();
  return hex.match(/../g)?.join(':') ?? '';
}

/**
 * siw copies its netdev's MAC into its GID when it is created and never again (6.1 siw_main.c:318),
 * and the RDMA CM finds an iWARP device by the netdev's current MAC (cma.c:752): once a failover
 * has moved the bond to another MAC, no new connection can be made over it (known issue
 * siw-gid-stale-after-bond-mac-change). Before a test that is a lab precondition, like rxe's lost
 * default GID: undefined when siw0's GID is the bond's MAC, else why not.
 */
function siwStale(mine: RdmaLink[], gids: string[], bond: string, bondMac: string): string | undefined {
  const mac = bondMac.trim().toLowerCase();
  const stale = mine.map((l, i) => ({ l, gidMac: macOfIwarpGid(gids[i] ?? '') })).filter((x) => x.gidMac !== mac);
  return stale.length ? `${stale.map((x) => x.l.ifname).join(', ')} still has the GID of ${stale[0]!.gidMac} while ${bond} is ${mac} (siw takes its GID once, at creation): no new connection could be made over it` : undefined;
}

/** What the check before each test needs about one bond, read in one round trip. */
export interface BondReadiness {
  bond: BondSysfs;
  /** slave → its carrier file ("1", "0", "x" when unreadable) */
  carriers: Map<string, string>;
  links: RdmaLink[];
  /** "dev/ports/N" → GID index 0 as sysfs prints it ("missing" when it cannot be read) */
  gid0: Map<string, string>;
}

export const READINESS = `${SYSFS_READ}
shift
for s; do c=x; read -r c 2>/dev/null < "/sys/class/net/$s/carrier" || c=x; printf 'carrier.%s=%s\\n' "$s" "$c"; done
printf 'rdmajson=%s\\n' "$(rdma -j link show 2>/dev/null | tr -d '\\n')"
for p in /sys/class/infiniband/*/ports/*; do
  [ -d "$p" ] || continue
  g=; read -r g 2>/dev/null < "$p/gids/0" || g=missing
  printf 'gid0.%s=%s\\n' "\${p#/sys/class/infiniband/}" "\${g:-missing}"
done`;

export async function readBondReadiness(node: Node, bond: string, slaves: readonly string[]): Promise<BondReadiness> {
  const r = await node.run(['sh', '-c', READINESS, 'ready', bond, ...slaves], { timeoutMs: 15_000 });
  return parseBondReadiness(bond, r.stdout);
}

export function parseBondReadiness(bond: string, text: string): BondReadiness {
  const carriers = new Map<string, string>();
  const gid0 = new Map<string, string>();
  let links: RdmaLink[] = [];
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i < 0) continue;
    const k = line.slice(0, i);
    const v = line.slice(i + 1).trim();
    if (k.startsWith('carrier.')) carriers.set(k.slice('carrier.'.length), v);
    else if (k.startsWith('gid0.')) gid0.set(k.slice('gid0.'.length), v);
    else if (k === 'rdmajson') links = v ? parseRdmaLinks(v) : [];
  }
  return { bond: parseBondSysfs(bond, text), carriers, links, gid0 };
}

const zeroGid = (g: string | undefined) => g === undefined || g === 'missing' || /^[0:]+$/.test(g);

/**
 * Is the bond fit for the next test? true, or why not: there with every slave, no stray primary,
 * up, every slave with carrier, its RDMA port ACTIVE, and (siw) a GID that is the bond's MAC.
 */
export function bondReadinessProblem(r: BondReadiness, slaves: readonly string[], primary = ''): true | string {
  const b = r.bond;
  if (!b.mode) return `${b.name} is missing`;
  // a test's primary left behind turns every later carrier drop into a failover and a failback
  if (b.primary !== primary) return `${b.name}'s primary is "${b.primary}", the topology's is "${primary}"`;
  if (slaves.some((s) => !b.slaves.includes(s))) return `${b.name} lost a slave (${b.slaves.join(', ')})`;
  if (b.miiStatus !== 'up') return `${b.name} is down`;
  if (slaves.some((s) => r.carriers.get(s) !== '1')) return `a slave of ${b.name} has no carrier (${slaves.map((s) => `${s}=${r.carriers.get(s) ?? 'x'}`).join(' ')})`;
  const rl = r.links.filter((l) => l.netdev === b.name || slaves.includes(l.netdev ?? ''));
  if (!rl.length || rl.some((l) => l.state !== 'ACTIVE')) return `RDMA port on ${b.name} not ACTIVE`;
  const siw = r.links.filter((l) => l.netdev === b.name && /^siw/.test(l.ifname));
  if (siw.length) return siwStale(siw, siw.map((l) => r.gid0.get(`${l.ifname}/ports/${l.port}`) ?? 'missing'), b.name, b.address) ?? true;
  return true;
}

/** Has a soft RDMA port on the bond itself lost its default GID (see restoreDefaultGid)? */
export function defaultGidLost(r: BondReadiness): boolean {
  return r.links.filter((l) => l.netdev === r.bond.name).some((l) => zeroGid(r.gid0.get(`${l.ifname}/ports/${l.port}`)));
}

/** The soft RDMA device the harness adds over the bond itself (rxe: RoCE, siw: iWARP), if any. */
export function softRdma(b: BondSpec): 'rxe' | 'siw' | undefined {
  if (b.rdma?.type === 'rxe' || b.rdma?.type === 'siw') return b.rdma.type;
  if (b.rdma) return undefined;
  const first = b.slaves[0]?.link;
  return (first === 'rxe' || first === 'siw') && b.slaves.every((s) => s.link === first) ? first : undefined;
}

export async function rdmaLinks(node: Node): Promise<RdmaLink[]> {
  const r = await node.run(['rdma', '-j', 'link', 'show'], { timeoutMs: 15_000 });
  return parseRdmaLinks(r.stdout);
}

/** Waits until an RDMA port sits on the bond (rxe) or on its slaves (HCA) and is ACTIVE; `first`:
 *  the links as just read. */
async function verifyRdma(node: Node, b: BondSpec, rdmaLink: string | undefined, first?: RdmaLink[]): Promise<RdmaLink[]> {
  let given = first;
  return waitFor(
    `${node.name}: RDMA port on ${b.name} ACTIVE`,
    async () => {
      const links = given ?? (await rdmaLinks(node));
      given = undefined;
      const mine = rdmaLink
        ? links.filter((l) => l.ifname === rdmaLink)
        : links.filter((l) => b.slaves.some((s) => s.name === l.netdev || s.rdma_device === l.ifname));
      return mine.length && mine.every((l) => l.state === 'ACTIVE') ? mine : undefined;
    },
    { timeoutMs: 20_000, intervalMs: 250 },
  );
}

// One round trip: each port's GID 0 and state read with builtins, the bond cycled when a GID is
// gone, then both polled until every GID is back and every port ACTIVE (four or more round trips of
// 100-200 ms on an emulated guest were 0.6-0.7 s a test, and nearly every failover test costs rxe
// the GID). $1: the bond, $2: the bound in seconds, $3: /sys/class/infiniband, then the ports as
// "dev/ports/N". Prints "intact", "restored" or "gone: PORT=GID/STATE …" (still wrong at the bound).
export const GID_RESTORE = `bond=$1; bound=$2; ib=$3; shift 3
zero() { case $1 in '') return 0 ;; *[!0:]*) return 1 ;; *) return 0 ;; esac; }
cs() { read -r u _ < /proc/uptime; c=\${u%.*}\${u#*.}; }
lost() {
  l=; for p; do
    g=; s=; read -r g 2>/dev/null < "$ib/$p/gids/0"; read -r s 2>/dev/null < "$ib/$p/state"
    case $s in *ACTIVE*) zero "$g" || continue ;; esac
    l="$l $p=\${g:-missing}/\${s:-?}"
  done
}
gone=; for p; do g=; read -r g 2>/dev/null < "$ib/$p/gids/0"; zero "$g" && gone=1; done
[ -n "$gone" ] || { echo intact; exit 0; }
ip link set dev "$bond" down && ip link set dev "$bond" up || exit 1
cs; end=$((c + bound * 100))
while :; do
  lost "$@"
  [ -z "$l" ] && { echo restored; exit 0; }
  cs; [ "$c" -ge "$end" ] && { echo "gone:$l"; exit 0; }
  sleep 0.05
done`;

/**
 * rxe bound to a bond loses its default RoCE GID (index 0) on every bond failover, and nothing
 * puts it back (6.1 roce_gid_mgmt.c: NETDEV_BONDING_FAILOVER deletes all GIDs of the bond —
 * upper_device_filter matches an RDMA netdev that *is* the bond — but re-adds the default GIDs only
 * for RDMA netdevs *below* the bond, is_upper_ndev_bond_master_filter). ULPs addressed by IP do not
 * care; SRP does (ib_srpt names its target ports by GID 0). A bond down/up (NETDEV_UP) restores it.
 * Returns what it did, or undefined when GID 0 was there.
 */
export async function restoreDefaultGid(node: Node, bond: string, links?: RdmaLink[]): Promise<string | undefined> {
  const mine = (links ?? (await rdmaLinks(node))).filter((l) => l.netdev === bond);
  if (!mine.length) return undefined; // HCA ports under the bond: the kernel re-adds their default GIDs
  const ports = mine.map((l) => `${l.ifname}/ports/${l.port}`);
  const boundS = 20;
  const r = await node.run(['sh', '-c', GID_RESTORE, 'gid-restore', bond, String(boundS), '/sys/class/infiniband', ...ports], { timeoutMs: (boundS + 10) * 1000 });
  const out = r.stdout.trim();
  if (out === 'intact') return undefined;
  if (out !== 'restored') throw new Error(`${node.name}: default GID not back (or RDMA port not ACTIVE) on ${mine.map((l) => l.ifname).join(', ')} ${boundS} s after cycling ${bond}: ${out.replace(/^gone:\s*/, '')}`);
  return `${mine.map((l) => l.ifname).join(', ')} had no default GID (index 0): the bond failover dropped it (rxe bound to the bond itself); ${bond} cycled down/up to restore it`;
}

export interface FabricUpResult {
  record: FabricRecord;
  durationMs: number;
  links: Record<string, RdmaLink[]>;
}

/** Brings every node's fabric up (nodes in parallel), then checks that peers reach each other. */
export async function fabricUp(lab: Lab, journal: Journal = () => undefined, topology: Topology = lab.loaded.topology): Promise<FabricUpResult> {
  const t0 = now();
  const record: FabricRecord = { topology: topology.name, startedAt: new Date().toISOString(), nodes: [] };
  const save = () => journal(record);
  const links: Record<string, RdmaLink[]> = {};
  await Promise.all(
    topology.nodes.map(async (spec) => {
      const node = lab.node(spec.name);
      const rec: NodeFabricRecord = { node: spec.name, modulesLoaded: [], bonds: [] };
      record.nodes.push(rec);
      if (!spec.bonds?.length) return;
      const before = await readBefore(node, spec.bonds);
      rec.modulesBefore = before.baseline;
      save();
      await ensureModules(node, [...BASE_MODULES, ...linkModules(spec)], before.baseline, rec, save);
      for (const b of spec.bonds) {
        const shown = await buildBond(node, b, before.bonds.get(b.name) ?? [], rec, save);
        links[spec.name] = await verifyRdma(node, b, rec.bonds.at(-1)?.rdmaLink, shown);
      }
    }),
  );
  await verifyPeers(lab, 20_000, topology);
  return { record, durationMs: now() - t0, links };
}

/** Every node pings every other node's bond address in the same subnet, through the bond. */
export async function verifyPeers(lab: Lab, timeoutMs = 20_000, topology: Topology = lab.loaded.topology): Promise<void> {
  const bonds = topology.nodes.flatMap((n) => (n.bonds ?? []).map((b) => ({ node: n.name, bond: b.name, cidr: parseCidr(b.address) })));
  const checks = bonds.flatMap((a) =>
    bonds
      .filter((b) => b.node !== a.node && a.cidr.ok && b.cidr.ok && samePrefix(a.cidr, b.cidr))
      .map(async (b) => {
        const ip = b.cidr.ok ? b.cidr.ip : '';
        await waitFor(
          `${a.node} reaching ${b.node} (${ip}) over ${a.bond}`,
          async () => ((await lab.node(a.node).exec(['ping', '-c', '1', '-W', '1', '-I', a.bond, ip], { timeoutMs: 5000 })).exitCode === 0 ? true : undefined),
          { timeoutMs, intervalMs: 200 },
        );
      }),
  );
  await Promise.all(checks);
}

function samePrefix(a: { ip: string; prefix: number }, b: { ip: string; prefix: number }): boolean {
  const n = (ip: string) => ip.split('.').reduce((acc, o) => (acc << 8) + Number(o), 0) >>> 0;
  const mask = a.prefix === 0 ? 0 : (~0 << (32 - a.prefix)) >>> 0;
  return ((n(a.ip) & mask) >>> 0) === ((n(b.ip) & mask) >>> 0);
}

/**
 * `link_delete LINK TENTHS`: deletes an RDMA link, waiting at most TENTHS tenths of a second. A delete
 * whose device is still held never returns, in D state (no signal ends it, so \`timeout\` waited
 * on with it): seen over siw after the rpcrdma double put, and over rxe after svcrdma kept a
 * connection (full run at 5d05e8a: 63 s until the command's own timeout, then the lab was rebooted
 * anyway). A healthy delete takes well under a second on an emulated guest. Told as a problem (the
 * VM lab then reboots the node); the stuck process is left as it is.
 */
export const LINK_DELETE = `link_delete() {
  local f p i=0 st e
  f=$(mktemp) || f=/dev/null
  rdma link delete "$1" > "$f" 2>&1 &
  p=$!
  while kill -0 "$p" 2>/dev/null; do
    if [ "$i" -ge "$2" ]; then problem "rdma link delete $1" "did not return within $(($2 / 10)) s (its device is still held)"; [ "$f" = /dev/null ] || rm -f "$f"; return; fi
    sleep 0.1; i=$((i + 1))
  done
  wait "$p"; st=$?
  if [ "$st" -ne 0 ]; then e=$(cat "$f"); problem "rdma link delete $1" "\${e:-exit $st}"; fi
  [ "$f" = /dev/null ] || rm -f "$f"
}`;

// Undoes the bonds of a record, newest first, in one round trip ($1 the record's boot id or "", then
// per bond: name, RDMA link or "", slave count, and per slave: name, MTU, 1 if it was up). A node
// booted since has none of it left: it says "rebooted" and changes nothing. Otherwise each part is
// undone on its own — what exists of it only — and each failure is told ("rf-problem WHAT: ERROR")
// without stopping the others. An `rdma link delete` that never returns is given up on (LINK_DELETE).
export const FABRIC_DOWN = `boot=$1; shift
read -r now < /proc/sys/kernel/random/boot_id || now=
if [ -n "$boot" ] && [ "$now" != "$boot" ]; then echo rebooted; exit 0; fi
problem() { printf 'rf-problem %s: %s\n' "$1" "$(printf %s "$2" | tr '\n' ' ')"; }
${LINK_DELETE}
while [ $# -gt 0 ]; do
  b=$1; link=$2; n=$3; shift 3
  if [ -n "$link" ] && [ -e "/sys/class/infiniband/$link" ]; then link_delete "$link" 100; fi
  if [ -e "/sys/class/net/$b" ]; then
    if e=$(ip link set dev "$b" down 2>&1); then
      i=0; while [ $i -lt "$n" ]; do printf -- '-%s' "\${@:$((i*3+1)):1}" > "/sys/class/net/$b/bonding/slaves" 2>/dev/null; i=$((i+1)); done
      e=$( { printf -- '-%s' "$b" > /sys/class/net/bonding_masters; } 2>&1) || problem "removing $b" "$e"
    else problem "removing $b" "$e"; fi
  fi
  while [ "$n" -gt 0 ]; do
    s=$1; mtu=$2; up=$3; shift 3; n=$((n-1))
    st=down; [ "$up" = 1 ] && st=up
    e=$( { ip link set dev "$s" mtu "$mtu" && ip link set dev "$s" "$st"; } 2>&1) || problem "restoring $s" "$e"
  done
done`;

/** Undoes a fabric record, newest first. Best effort per step; returns what failed, per node. A node
 *  that does not answer is not touched (its part stays in the journal). */
export async function fabricDown(lab: Lab, record: FabricRecord): Promise<{ node: string; what: string }[]> {
  const problems: { node: string; what: string }[] = [];
  await Promise.all(
    record.nodes.map(async (rec) => {
      let node: Node;
      const args = [...rec.bonds].reverse().filter((b) => b.created).flatMap((b) => [b.name, b.rdmaLink ?? '', String(b.slaves.length), ...b.slaves.flatMap((s) => [s.name, String(s.mtu), s.wasUp ? '1' : '0'])]);
      let out: string;
      try {
        node = lab.node(rec.node);
        out = (await node.run(['bash', '-c', FABRIC_DOWN, 'fabric-down', rec.modulesBefore?.boot ?? '', ...args], { timeoutMs: 60_000 })).stdout;
      } catch (e) {
        problems.push({ node: rec.node, what: `not restored: ${(e as Error).message}` });
        return;
      }
      // Booted since the record was made: its bonds, links and modules went with that boot; what
      // is loaded now is the new boot's, not ours to unload.
      if (out.trim() === 'rebooted') return;
      for (const m of out.matchAll(/^rf-problem (.*)$/gm)) problems.push({ node: rec.node, what: m[1]! });
      const step = async (what: string, fn: () => Promise<unknown>) => {
        try {
          await fn();
        } catch (e) {
          problems.push({ node: rec.node, what: `${what}: ${(e as Error).message}` });
        }
      };
      // Only what we loaded, and only if nothing else uses it now.
      await unloadModules(node, rec.modulesLoaded);
      // …and what the kernel and daemons loaded on the harness's behalf since (crypto algorithms).
      const before = rec.modulesBefore;
      if (before) await step('unloading the unused modules loaded since the harness began', () => unloadAppeared(node, before));
    }),
  );
  await sleep(0);
  return problems;
}

/**
 * Replays the fabric's restore journal (what an earlier `fabric up` or run changed). The journal is
 * cleared only for the nodes whose restore succeeded: the others stay listed for the next attempt.
 */
export async function restoreFabric(lab: Lab, name = lab.loaded.topology.name): Promise<{ restored: boolean; problems: string[] }> {
  const rec = readJournal<FabricRecord>('fabric', name);
  if (!rec) return { restored: false, problems: [] };
  const problems = await fabricDown(lab, rec);
  const failed = new Set(problems.map((p) => p.node));
  if (!failed.size) clearJournal('fabric', name);
  else writeJournal('fabric', name, { ...rec, nodes: rec.nodes.filter((n) => failed.has(n.node)) });
  return { restored: true, problems: problems.map((p) => `${p.node}: ${p.what}`) };
}
