// Parsers for what the monitors read (pure). Structured sources are preferred everywhere (`rdma -j`,
// sysfs); these four have no JSON form: `ip -o -ts monitor`, tcpdump, trace_pipe, `dmesg -r`.
// Each returns the event without its controller time plus the node-side timestamp it carried.
import { allUlps } from '../ulp/registry.ts';
import type { ArpEvent, CmaEvent, KmsgClass, KmsgEvent, LinkEvent, NeighEvent, RpcrdmaEvent } from './events.ts';
import { MARKER_RE, parseIsoUtc } from './clockmap.ts';

export type Stamp = { clock: 'realtime'; ms: number } | { clock: 'kmsg'; ts: number } | { clock: 'trace'; ts: number };
export type Parsed<E> = { stamp: Stamp; event: Omit<E, 't' | 'node'> };

// ---- ip -o -ts monitor link neigh (run with TZ=UTC) ----

const LINK_RE = /^\[([^\]]+)\] (?:Deleted )?\d+: ([^:@\s]+)(?:@\S+)?: <([^>]*)> (.*)$/;
const NEIGH_RE = /^\[([^\]]+)\] (Deleted )?(?:Miss )?(\S+) dev (\S+)(?: lladdr ([0-9a-fA-F:]+))?((?: [A-Za-z_]+)*)\s*$/;

export function parseIpMonitor(line: string): Parsed<LinkEvent> | Parsed<NeighEvent> | undefined {
  const l = LINK_RE.exec(line);
  if (l) {
    const [, ts = '', ifname = '', flagText = '', rest = ''] = l;
    const flags = flagText.split(',');
    const event = /\bevent ([A-Z_ ]+?)\s*(?:\\|$)/.exec(rest)?.[1];
    const address = /link\/\S+ ([0-9a-fA-F:]{11,})/.exec(rest)?.[1];
    const master = /\bmaster (\S+)/.exec(rest)?.[1];
    return {
      stamp: { clock: 'realtime', ms: parseIsoUtc(ts) },
      event: {
        source: 'link',
        ifname,
        carrier: !flags.includes('NO-CARRIER'),
        adminUp: flags.includes('UP'),
        operstate: /\bstate (\S+)/.exec(rest)?.[1] ?? 'UNKNOWN',
        ...(address ? { address } : {}),
        ...(master ? { master } : {}),
        ...(event ? { event } : {}),
        raw: line,
      },
    };
  }
  const n = NEIGH_RE.exec(line);
  if (n) {
    const [, ts = '', deleted, ip = '', dev = '', lladdr, states = ''] = n;
    return {
      stamp: { clock: 'realtime', ms: parseIsoUtc(ts) },
      event: { source: 'neigh', ip, dev, ...(lladdr ? { lladdr } : {}), state: states.trim().split(' ').filter((w) => w !== 'router' && w !== 'proxy').pop() ?? '', deleted: !!deleted, raw: line },
    };
  }
  return undefined;
}

// ---- tcpdump -l -n -tt -e -i any arp  (LINUX_SLL2: interface and direction per packet) ----

// Hardware addresses: 6 bytes on Ethernet, 20 on IPoIB.
const HW = '[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5,19}';
const ARP_RE = new RegExp(
  `^(\\d+\\.\\d+) (\\S+)\\s+(In|Out|B|M|P)\\s+ifindex \\d+ (${HW}) ethertype ARP \\(0x0806\\), length \\d+: ` +
    `(?:Request who-has (\\S+)(?: \\((${HW})\\))? tell ([^\\s,]+)|Reply (\\S+) is-at (${HW}))`,
);

export function parseTcpdumpArp(line: string): Parsed<ArpEvent> | undefined {
  const m = ARP_RE.exec(line);
  if (!m) return undefined;
  const [, ts = '0', ifname = '', dir = '', ethSrc = '', whoHas, whoHasMac, tell, replyIp, replyMac] = m;
  const direction: 'in' | 'out' = dir === 'Out' ? 'out' : 'in';
  const base = { source: 'arp' as const, ifname, direction, ethSrc, raw: line };
  const stamp: Stamp = { clock: 'realtime', ms: Number(ts) * 1000 };
  if (whoHas && tell) {
    return {
      stamp,
      event: { ...base, op: 'request', senderIp: tell, senderMac: ethSrc, targetIp: whoHas, ...(whoHasMac ? { targetMac: whoHasMac } : {}), gratuitous: whoHas === tell },
    };
  }
  return { stamp, event: { ...base, op: 'reply', senderIp: replyIp ?? '', senderMac: replyMac ?? '', targetIp: '', gratuitous: false } };
}

// ---- trace_pipe ----

const TRACE_RE = /^\s*(.*?)-(\d+)\s+\[(\d+)\]\s+(\S+)\s+(\d+\.\d+): (\w+): (.*)$/;

export type ParsedTrace = Parsed<CmaEvent> | Parsed<RpcrdmaEvent> | { stamp: Stamp; marker: number } | undefined;

function fieldsOf(body: string): Record<string, string> {
  const f: Record<string, string> = {};
  for (const m of body.matchAll(/([A-Za-z_.]+)=(\S+)/g)) f[m[1]!] = m[2]!;
  return f;
}

export function parseTrace(line: string): ParsedTrace {
  const m = TRACE_RE.exec(line);
  if (!m) return undefined;
  const [, , , , , ts = '0', point = '', body = ''] = m;
  const stamp: Stamp = { clock: 'trace', ts: Number(ts) };
  if (point === 'tracing_mark_write') {
    const mk = MARKER_RE.exec(body);
    return mk ? { stamp, marker: Number(mk[1]) * 1000 } : undefined;
  }
  if (/^(xprtrdma|svcrdma|rpcrdma)_|^rpc_call_rpcerror$/.test(point)) {
    return { stamp, event: { source: 'rpcrdma', point, fields: fieldsOf(body), text: body, raw: line } };
  }
  // The rdma_cm workqueue's runs of its event handler (hub.ts CMA_WORK): which worker ran one, and
  // when; a run that delivered nothing dropped its event (cma.c cma_work_handler).
  const wq = /^workqueue_execute_(start|end)$/.test(point) ? /^work struct (\S+): function (\S+)/.exec(body) : undefined;
  if (wq) return { stamp, event: { source: 'cma', point, pid: Number(m[2]), fields: { work: wq[1]!, function: wq[2]! }, raw: line } };
  if (/^i?cm_/.test(point)) {
    const f = fieldsOf(body);
    const ev = /tos=\d+ (?:RDMA_CM_EVENT_)?([A-Z_]+) \((-?\d+)\/(-?\d+)\)/.exec(body) ?? /tos=\d+ (?:RDMA_CM_EVENT_)?([A-Z_]+) consumer returns/.exec(body);
    const cmId = f['cm.id'] !== undefined ? Number(f['cm.id']) : undefined;
    const src = f.src && f.src !== '(einval)' ? f.src : undefined;
    const dst = f.dst && f.dst !== '(einval)' && !f.dst.startsWith('0.0.0.0') ? f.dst : undefined;
    return {
      stamp,
      event: {
        source: 'cma',
        point,
        pid: Number(m[2]),
        ...(cmId !== undefined && !Number.isNaN(cmId) ? { cmId } : {}),
        ...(src ? { src } : {}),
        ...(dst ? { dst } : {}),
        ...(ev && point === 'cm_event_handler' ? { event: ev[1], status: Number(ev[3]) } : ev ? { event: ev[1] } : {}),
        fields: f,
        raw: line,
      },
    };
  }
  return undefined;
}

// ---- dmesg -W -r : "<5>[   37.068042] text" ----

const KMSG_RE = /^<(\d+)>\[\s*(\d+\.\d+)\] (.*)$/;

const CLASSES: [KmsgClass, RegExp][] = [
  ['marker', MARKER_RE],
  // a panic (sysrq "c" included): only the serial console keeps it, the node is gone
  ['panic', /Kernel panic - not syncing|sysrq: Trigger a crash/],
  ['oops', /\bOops\b|BUG: kernel NULL pointer dereference|BUG: unable to handle/],
  ['kasan', /KASAN/],
  ['refcount', /refcount_t: /],
  ['gpf', /general protection fault/],
  ['hung', /blocked for more than \d+ seconds|hung_task|INFO: task .* blocked/],
  ['bug', /\bBUG:|kernel BUG at/],
  ['warning', /\bWARNING: |-+\[ cut here \]-+/],
  ['unhandled-cm', /Unhandled CM event/i],
  ['cma-addr-change', /RDMA CM addr change for ndev/],
  ['bonding', /^bond[\w.-]*: |\bbonding: /],
  // each ULP's own classes (harness/ulp/)
  ...allUlps().flatMap((u) => u.kmsgClasses.map(([c, re]) => [c as KmsgClass, re] as [KmsgClass, RegExp])),
  ['rxe', /rdma_rxe|infiniband rxe|\brxe\d/],
  ['siw', /\bsiw[:_\d]|infiniband siw/],
];

export function classifyKmsg(text: string): KmsgClass {
  return CLASSES.find(([, re]) => re.test(text))?.[0] ?? 'other';
}

export type ParsedKmsg = Parsed<KmsgEvent> | { stamp: Stamp; marker: number } | undefined;

export function parseKmsg(line: string): ParsedKmsg {
  const m = KMSG_RE.exec(line);
  if (!m) return undefined;
  const [, prio = '6', ts = '0', text = ''] = m;
  const stamp: Stamp = { clock: 'kmsg', ts: Number(ts) };
  const mk = MARKER_RE.exec(text);
  if (mk && /^rf-sync /.test(text)) return { stamp, marker: Number(mk[1]) * 1000 };
  return { stamp, event: { source: 'kmsg', level: Number(prio) & 7, kernelTs: Number(ts), text, cls: classifyKmsg(text), raw: line } };
}

/** Kernel log classes that make a test fail unless the topology allows them. */
export const UNHEALTHY: readonly KmsgClass[] = ['panic', 'oops', 'kasan', 'refcount', 'gpf', 'hung', 'bug', 'warning', 'unhandled-cm'];
