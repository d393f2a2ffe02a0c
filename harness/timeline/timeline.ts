// Events → a failover timeline per workload connection. Pure: no I/O, testable from recorded events.
//
// Phases, in the order the failover path should produce them:
//   fault injected → carrier lost → bond failover → bond address → GARP sent → GARP seen by the peer
//   → peer neighbour updated → ADDR_CHANGE → disconnected / QP error → address resolved → route
//   resolved → established → I/O resumed
// A phase without evidence is listed as missing, with the sources that were searched: never invented.
import type { ArpEvent, BondEvent, CmaEvent, KmsgEvent, LabEvent, LinkEvent, NeighEvent, ResEvent, WorkloadEvent } from '../monitor/events.ts';

export type PhaseId =
  | 'fault'
  | 'carrier_lost'
  | 'bond_failover'
  | 'bond_back'
  | 'bond_address'
  | 'garp_sent'
  | 'garp_seen'
  | 'neigh_updated'
  | 'addr_change'
  | 'disconnected'
  | 'qp_error'
  | 'io_stalled'
  | 'addr_resolved'
  | 'route_resolved'
  | 'established'
  | 'io_resumed';

export const PHASE_LABELS: Record<PhaseId, string> = {
  fault: 'fault injected',
  carrier_lost: 'carrier lost',
  bond_failover: 'bond failover',
  bond_back: 'bond active again on the same slave (no failover)',
  bond_address: 'bond address changed',
  garp_sent: 'gratuitous ARP sent',
  garp_seen: 'gratuitous ARP seen by the peer',
  neigh_updated: 'peer neighbour entry updated',
  addr_change: 'RDMA_CM_EVENT_ADDR_CHANGE',
  disconnected: 'disconnected',
  qp_error: 'QP error',
  io_stalled: 'last I/O before the outage',
  addr_resolved: 'address resolved',
  route_resolved: 'route resolved',
  established: 'connection re-established',
  io_resumed: 'I/O resumed',
};

export const PHASE_ORDER: PhaseId[] = [
  'fault',
  'carrier_lost',
  'bond_failover',
  'bond_back',
  'bond_address',
  'garp_sent',
  'garp_seen',
  'neigh_updated',
  'addr_change',
  'io_stalled',
  'disconnected',
  'qp_error',
  'addr_resolved',
  'route_resolved',
  'established',
  'io_resumed',
];

export interface Evidence {
  source: string;
  node: string;
  t: number;
  raw?: string;
}

export interface Phase {
  id: PhaseId;
  label: string;
  /** ms since the fault was injected (absent when missing) */
  atMs?: number;
  /** ms since the previous phase that was seen */
  sincePrevMs?: number;
  node?: string;
  detail?: string;
  evidence?: Evidence;
  missing?: boolean;
  /** why it is missing, or why it does not apply */
  reason?: string;
}

/** The slave a bonding driver's log line makes active ("(slave X): making interface the new active
 *  one", or older kernels' "making interface X the new active one"); undefined for any other line. */
export function newActiveInLog(text: string): string | undefined {
  return /\(slave (\S+)\): making interface the new active one/.exec(text)?.[1] ?? /making interface (\S+) the new active one/.exec(text)?.[1];
}

/** A bond poller's sample that shows the failover: a slave made active that is not the one active
 *  before the fault (not a change to none, both links down). */
export function isFailoverSample(e: BondEvent, oldActive: string | undefined): boolean {
  return e.changed.includes('active_slave') && !!e.activeSlave && e.activeSlave !== oldActive;
}

export interface FaultRef {
  t: number;
  node: string;
  ifname?: string;
  bond?: string;
  kind: string;
  description: string;
  /** the bond as it was just before the fault */
  before?: { activeSlave: string; address: string };
  /** how long the inject call took (a real lab's carrier command can take a second or more) */
  injectMs?: number;
}

export interface ConnectionRef {
  ulp: string;
  label: string;
  /** the node on the faulted side first */
  nodes: string[];
  /** bond IPs of the connection's ends */
  ips: string[];
  /** RDMA CM ports that identify the connection, when known */
  ports?: number[];
  /** WorkloadEvent.workload of its progress stream */
  workload?: string;
  /** process names of its QPs in `rdma res` */
  comms?: string[];
  /** kernel log patterns (source text of RegExps) that mark this ULP's disconnect / reconnect */
  kmsgDisconnect?: string[];
  kmsgEstablished?: string[];
}

export interface BondRef {
  node: string;
  bond: string;
  ip: string;
  slaves: string[];
}

export interface Timeline {
  ulp: string;
  connection: string;
  fault: FaultRef;
  phases: Phase[];
  summary: {
    /** when the fault took effect on the node (its carrier loss was seen), ms after it was issued;
     *  failoverMs, reconnectMs, ioResumedMs and outageMs count from here */
    effectMs?: number;
    failoverMs?: number;
    newActiveSlave?: string;
    oldAddress?: string;
    newAddress?: string;
    reconnectMs?: number;
    outageMs?: number;
    ioResumedMs?: number;
    garpCountSeen?: number;
    /** REJECTED events (connect races) between the fault and re-establishment */
    rejectsBeforeEstablished?: number;
  };
  /** the window the timeline covers (ms since the fault) */
  windowMs: number;
  /** how far event times may be off (clock alignment), ms */
  errorBoundMs: number;
}

export interface TimelineInput {
  events: readonly LabEvent[];
  fault: FaultRef;
  connection: ConnectionRef;
  bonds: readonly BondRef[];
  /** until when (controller epoch ms) to look; defaults to the last event */
  until?: number;
  errorBoundMs?: number;
  /** a gap between progress events longer than this counts as an outage (ms) */
  stallGapMs?: number;
}

const is = <S extends LabEvent['source']>(s: S) => (e: LabEvent): e is Extract<LabEvent, { source: S }> => e.source === s;

function hostOf(addr: string | undefined): string | undefined {
  if (!addr) return undefined;
  const i = addr.lastIndexOf(':');
  return i > 0 ? addr.slice(0, i) : addr;
}
function portOf(addr: string | undefined): number | undefined {
  if (!addr) return undefined;
  const i = addr.lastIndexOf(':');
  return i > 0 ? Number(addr.slice(i + 1)) : undefined;
}

/** Does a CM trace event belong to the connection? (both ends' IPs, and a port when known) */
export function cmaMatches(e: CmaEvent, c: ConnectionRef): boolean {
  const s = hostOf(e.src);
  const d = hostOf(e.dst);
  if (!s || !d || !c.ips.includes(s) || !c.ips.includes(d) || s === d) return false;
  if (c.ports?.length) {
    const ps = [portOf(e.src), portOf(e.dst)];
    if (!ps.some((p) => p !== undefined && c.ports!.includes(p))) return false;
  }
  return true;
}

export function buildTimeline(input: TimelineInput): Timeline {
  const { fault, connection: c } = input;
  const tol = Math.max(5, input.errorBoundMs ?? 0);
  const from = fault.t - tol;
  const until = input.until ?? Math.max(fault.t, ...input.events.map((e) => e.t));
  const ev = input.events.filter((e) => e.t >= from && e.t <= until).sort((a, b) => a.t - b.t);
  const bond = input.bonds.find((b) => b.node === fault.node && (!fault.bond || b.bond === fault.bond));
  const peers = c.nodes.filter((n) => n !== fault.node);
  const found = new Map<PhaseId, { t: number; node: string; detail?: string; evidence: Evidence } | { missing: string }>();
  const put = (id: PhaseId, e: LabEvent | undefined, detail?: string, searched?: string) => {
    if (e) found.set(id, { t: e.t, node: e.node, ...(detail ? { detail } : {}), evidence: { source: e.source, node: e.node, t: e.t, ...(e.raw ? { raw: e.raw } : {}) } });
    else found.set(id, { missing: searched ?? 'no event seen' });
  };

  // Bond state just before the fault, for "what changed".
  const bondEvents = input.events.filter(is('bond')).filter((e) => e.node === fault.node && (!bond || e.bond === bond.bond)).sort((a, b) => a.t - b.t);
  const before = [...bondEvents].reverse().find((e) => e.t < fault.t);
  // Phases come only from the window: with several faults in one test (RF-06's drops) each window
  // ends at the next fault, and a later drop's failover is not this one's.
  const bondWindow = bondEvents.filter((e) => e.t >= from && e.t <= until);

  // carrier lost (for a failback: the primary's carrier back, the change the bond reacts to)
  const back = fault.kind === 'failback';
  const carrierLink = ev.filter(is('link')).find((e: LinkEvent) => e.node === fault.node && e.ifname === fault.ifname && (back ? e.carrier && e.adminUp : !e.carrier || !e.adminUp));
  const carrierBond = bondWindow.find((e) => fault.ifname !== undefined && e.changed.includes(`carrier:${fault.ifname}`) && e.carriers[fault.ifname] === (back ? '1' : '0'));
  const carrier = [carrierLink, carrierBond].filter(Boolean).sort((a, b) => a!.t - b!.t)[0];
  put('carrier_lost', carrier, fault.ifname ? `${fault.node}/${fault.ifname}` : undefined, fault.ifname ? `no carrier change of ${fault.node}/${fault.ifname} (ip monitor link, bond sysfs)` : 'the fault does not target a link');

  // bond failover (sysfs poll, or the bonding driver's own log line — earliest wins)
  const bondName = bond?.bond ?? fault.bond;
  const oldActive = fault.before?.activeSlave ?? before?.activeSlave;
  const oldAddress = fault.before?.address ?? before?.address;
  const failBond = bondWindow.find((e: BondEvent) => isFailoverSample(e, oldActive));
  const failLog = ev.filter(is('kmsg')).find((e: KmsgEvent) => e.node === fault.node && e.cls === 'bonding' && /making interface (\S+ )?the new active one|now the active interface/.test(e.text));
  // NETDEV_BONDING_FAILOVER itself, as rtnetlink reports it: the event the RDMA CM reacts to.
  const failEvent = ev.filter(is('link')).find((e: LinkEvent) => e.node === fault.node && e.ifname === bondName && e.event === 'BONDING FAILOVER');
  const failover = [failBond, failLog, failEvent].filter(Boolean).sort((a, b) => a!.t - b!.t)[0];
  const newActive =
    failBond?.activeSlave ??
    (failLog ? newActiveInLog(failLog.text) : undefined);
  // Every slave down, then the same one back (RF-03): the bonding driver logs it and raises
  // BONDING_FAILOVER, but it is no failover — the slave and the address are the ones from before.
  if (failover && newActive && newActive === oldActive) {
    put('bond_back', failover, `every slave of ${bondName ?? 'the bond'} was down; ${newActive} is active again (the same address: no ADDR_CHANGE is due)`);
    put('bond_failover', undefined, undefined, `no failover: the active slave after the fault is the one from before (${newActive})`);
  } else {
    put('bond_failover', failover, newActive ? `${oldActive ?? '?'} → ${newActive}` : failEvent ? 'BONDING FAILOVER' : undefined, `no change of the active slave on ${fault.node}/${bondName ?? '?'} (bond sysfs, rtnetlink, kernel log)`);
  }

  // bond hardware address (sysfs poller, or rtnetlink's view of the bond)
  const addrPoll = bondWindow.find((e) => e.changed.includes('address'));
  const addrLink = ev.filter(is('link')).find((e: LinkEvent) => e.node === fault.node && e.ifname === bondName && !!e.address && !!oldAddress && e.address !== oldAddress);
  const addr = [addrPoll, addrLink].filter(Boolean).sort((a, b) => a!.t - b!.t)[0];
  const newMac = addr?.address;
  put('bond_address', addr, newMac ? `${oldAddress ?? '?'} → ${newMac}` : undefined, `the address of ${fault.node}/${bondName ?? '?'} did not change (fail_over_mac=none, or no failover)`);

  // gratuitous ARP: on the wire at the faulted node, and at the peer
  const garp = (e: ArpEvent) => e.gratuitous && bond !== undefined && e.senderIp === bond.ip && (!newMac || e.senderMac === newMac);
  const arps = ev.filter(is('arp'));
  put('garp_sent', arps.find((e) => e.node === fault.node && e.direction !== 'in' && garp(e)), undefined, `no gratuitous ARP for ${bond?.ip ?? '?'} captured leaving ${fault.node}`);
  const seenByPeer = arps.filter((e) => peers.includes(e.node) && e.direction !== 'out' && garp(e));
  put('garp_seen', seenByPeer[0], seenByPeer[0] ? `${seenByPeer[0].node}/${seenByPeer[0].ifname}: ${seenByPeer[0].senderIp} is-at ${seenByPeer[0].senderMac}` : undefined, `no gratuitous ARP for ${bond?.ip ?? '?'} captured at ${peers.join(', ') || 'the peer'}`);
  const neigh = ev.filter(is('neigh')).find((e: NeighEvent) => peers.includes(e.node) && bond !== undefined && e.ip === bond.ip && !e.deleted && !!newMac && e.lladdr === newMac);
  put('neigh_updated', neigh, neigh ? `${neigh.node}: ${neigh.ip} lladdr ${neigh.lladdr} ${neigh.state}` : undefined, `no neighbour update for ${bond?.ip ?? '?'} → ${newMac ?? 'new address'} on the peer`);

  // RDMA CM
  const cma = ev.filter(is('cma')).filter((e) => e.point === 'cm_event_handler' && cmaMatches(e, c));
  const addrChangeTrace = cma.find((e) => e.event === 'ADDR_CHANGE');
  const addrChangeLog = ev.filter(is('kmsg')).find((e) => e.cls === 'cma-addr-change' && c.nodes.includes(e.node));
  const addrChange = [addrChangeTrace, addrChangeLog].filter(Boolean).sort((a, b) => a!.t - b!.t)[0];
  put('addr_change', addrChange, addrChangeTrace ? `cm.id=${addrChangeTrace.cmId}` : undefined, 'no RDMA_CM_EVENT_ADDR_CHANGE for this connection (rdma_cma trace, kernel log)');

  const disconnectKmsg = ev.filter(is('kmsg')).find((e) => c.nodes.includes(e.node) && (c.kmsgDisconnect ?? []).some((p) => new RegExp(p).test(e.text)));
  // RPC-over-RDMA's own view (NFS): its transport disconnects and connects.
  const rpc = c.ulp === 'nfs' ? ev.filter(is('rpcrdma')).filter((e) => c.nodes.includes(e.node)) : [];
  const rpcDisconnect = rpc.find((e) => /disconnect/.test(e.point));
  // The CM's own disconnect event, or the ULP calling rdma_disconnect (cm_disconnect).
  const disconnectCma = ev
    .filter(is('cma'))
    .filter((e) => cmaMatches(e, c))
    .find((e) => (e.point === 'cm_event_handler' && ['DISCONNECTED', 'UNREACHABLE', 'REJECTED', 'CONNECT_ERROR'].includes(e.event ?? '')) || e.point === 'cm_disconnect');
  const disc = [disconnectCma, disconnectKmsg, rpcDisconnect].filter(Boolean).sort((a, b) => a!.t - b!.t)[0];
  put(
    'disconnected',
    disc,
    disc === disconnectCma && disconnectCma ? `${disconnectCma.node}: ${disconnectCma.event ?? disconnectCma.point}` : disc === rpcDisconnect && rpcDisconnect ? `${rpcDisconnect.point} ${rpcDisconnect.text.slice(0, 80)}` : disconnectKmsg?.text,
    'no disconnect event for this connection (rdma_cma trace, rpcrdma trace, kernel log)',
  );

  const qpErr = ev.filter(is('res')).find((e: ResEvent) => c.nodes.includes(e.node) && e.qps.some((q) => q.state === 'ERR' && q.type !== 'GSI' && (!c.comms?.length || (q.comm !== undefined && c.comms.includes(q.comm)))));
  const qpErrLog = ev.filter(is('kmsg')).find((e) => c.nodes.includes(e.node) && /WR flushed|flush.*error|QP .*error/i.test(e.text));
  const qp = [qpErr, qpErrLog].filter(Boolean).sort((a, b) => a!.t - b!.t)[0];
  put('qp_error', qp, undefined, 'no QP seen in the error state (rdma res, kernel log)');

  const after = (id: PhaseId): number => {
    const f = found.get(id);
    return f && 't' in f ? f.t : fault.t;
  };
  const resolveFrom = Math.max(after('addr_change'), after('disconnected'), fault.t);
  put('addr_resolved', cma.find((e) => e.event === 'ADDR_RESOLVED' && e.t >= resolveFrom), undefined, 'no ADDR_RESOLVED after the fault (the ULP did not start a new connection, or the trace was off)');
  put('route_resolved', cma.find((e) => e.event === 'ROUTE_RESOLVED' && e.t >= resolveFrom), undefined, 'no ROUTE_RESOLVED after the fault');
  // Kernel ULPs get ESTABLISHED; a user-space active side (librdmacm) shows CONNECT_RESPONSE in the kernel.
  const estCma = cma.find((e) => (e.event === 'ESTABLISHED' || e.event === 'CONNECT_RESPONSE') && e.t >= resolveFrom);
  const estLog = ev.filter(is('kmsg')).find((e) => e.t >= fault.t && c.nodes.includes(e.node) && (c.kmsgEstablished ?? []).some((p) => new RegExp(p).test(e.text)));
  // xprtrdma_connect fires when a connect attempt completed (with its rc); xprtrdma_op_connect
  // when the RPC layer merely schedules one — it is not an established connection.
  const estRpc = rpc.find((e) => e.t >= resolveFrom && /(^|_)connect$/.test(e.point) && !/_op_connect$/.test(e.point) && !/rc=-|status=-/.test(e.text));
  const est = [estCma, estLog, estRpc].filter(Boolean).sort((a, b) => a!.t - b!.t)[0];
  put('established', est, est === estCma && estCma ? `cm.id=${estCma.cmId} ${estCma.event}` : est === estRpc && estRpc ? `${estRpc.point} ${estRpc.text.slice(0, 80)}` : estLog?.text, 'no connection re-established after the fault (rdma_cma ESTABLISHED, rpcrdma, ULP log)');
  const rejects = cma.filter((e) => e.event === 'REJECTED' && e.t >= fault.t && (!est || e.t <= est.t)).length;

  // I/O. An outage is the longest gap between progress increments after the fault (a gap counts
  // when it is well above the normal cadence). Without a visible gap, I/O "resumed" at the first
  // progress after the connection was re-established (or after the fault, if no connection event).
  // Progress counted after the workload reported an error (fio's last report counts failed I/O)
  // is not I/O resuming: it is not used.
  const firstError = input.events.filter(is('workload')).find((e) => e.workload === c.workload && e.kind === 'error' && e.t >= fault.t);
  const prog = input.events
    .filter(is('workload'))
    .filter((e: WorkloadEvent) => e.workload === c.workload && e.kind === 'progress' && e.done !== undefined && (!firstError || e.t < firstError.t))
    .sort((a, b) => a.t - b.t);
  const increments: WorkloadEvent[] = [];
  let lastDone = -Infinity;
  for (const p of prog) {
    if (p.done! > lastDone) {
      if (lastDone !== -Infinity) increments.push(p);
      lastDone = p.done!;
    }
  }
  const cadence = median(increments.filter((p) => p.t < fault.t).map((p, i, a) => (i ? p.t - a[i - 1]!.t : NaN)).filter((x) => !Number.isNaN(x)));
  const stallGap = input.stallGapMs ?? Math.max(500, 4 * (cadence || 250));
  // A workload that finished (its final report) did not stall after it.
  const final = input.events.filter(is('workload')).find((e) => e.workload === c.workload && e.kind === 'final');
  const ioUntil = final ? Math.min(final.t, until) : until;
  const firstBefore = [...increments].reverse().find((p) => p.t <= fault.t);
  const seq = [...(firstBefore ? [firstBefore] : []), ...increments.filter((p) => p.t > fault.t && p.t <= until)];
  // The outage is a stall that began before the connection came back (or soon after the fault):
  // a pause much later in a long run is something else.
  const stallStartsBy = est ? est.t : fault.t + stallGap + 2000;
  const effectAt = EFFECT_SEEN.includes(fault.kind) && carrier ? carrier.t : undefined;
  let gap: { start: WorkloadEvent; end: WorkloadEvent } | undefined;
  for (let i = 1; i < seq.length; i++) {
    const a = seq[i - 1]!;
    const b = seq[i]!;
    if (a.t > stallStartsBy) break;
    // A pause that ended before the fault took effect is not its outage (measured on the real-lab
    // path: the carrier command took 2.1 s and starved the guests for 1.1 s before the link dropped).
    if (effectAt !== undefined && b.t <= effectAt) continue;
    if (b.t - a.t >= stallGap && (!gap || b.t - a.t > gap.end.t - gap.start.t)) gap = { start: a, end: b };
  }
  const lastInc = seq[seq.length - 1];
  // A workload that finished in the window did not stall at its end; one that finished after the
  // window (a later fault cut it) did stall, if its last progress was long before the window ended.
  const trailing = lastInc && !(final && final.t <= until) ? ioUntil - lastInc.t : 0;
  // I/O resumes after the fault took effect (a carrier drop seen a few ms after the command): a
  // progress report between the command and the drop is I/O from before the outage.
  const resumeFrom = est?.t ?? (effectAt !== undefined ? Math.max(effectAt, fault.t) : fault.t);
  if (!c.workload) {
    put('io_stalled', undefined, undefined, 'no workload progress stream for this connection');
    put('io_resumed', undefined, undefined, 'no workload progress stream for this connection');
  } else if (!seq.length) {
    put('io_stalled', undefined, undefined, 'no I/O progress seen around the fault');
    put('io_resumed', undefined, undefined, `no I/O progress seen within ${(until - fault.t).toFixed(0)} ms of the fault`);
  } else if (trailing >= stallGap && (!gap || trailing > gap.end.t - gap.start.t)) {
    put('io_stalled', lastInc, `${lastInc!.done} done`);
    put('io_resumed', undefined, undefined, `I/O did not resume within ${(ioUntil - fault.t).toFixed(0)} ms of the fault (last progress ${(lastInc!.t - fault.t).toFixed(0)} ms after it)`);
  } else if (gap) {
    put('io_stalled', gap.start, `${gap.start.done} done`);
    put('io_resumed', gap.end, `${gap.end.done} done`);
  } else {
    const resumed = seq.find((p) => p.t >= resumeFrom);
    if (!resumed) {
      put('io_stalled', lastInc, `${lastInc!.done} done`);
      put('io_resumed', undefined, undefined, `no I/O progress after ${est ? 're-establishment' : 'the fault'} within ${(ioUntil - fault.t).toFixed(0)} ms of the fault`);
    } else {
      const stalled = [...seq].reverse().find((p) => p.t < resumed.t);
      found.set('io_stalled', stalled ? { t: stalled.t, node: stalled.node, detail: `${stalled.done} done (no stall ≥ ${Math.round(stallGap)} ms)`, evidence: { source: 'workload', node: stalled.node, t: stalled.t } } : { missing: 'no progress before the resume' });
      put('io_resumed', resumed, `${resumed.done} done${est ? ', first progress after re-establishment' : ''}`);
    }
  }

  // Seen phases in the order they happened (ties keep the path order); missing ones after them.
  const took = fault.injectMs !== undefined && fault.injectMs >= 50 ? ` (the command took ${round(fault.injectMs)} ms)` : '';
  const phases: Phase[] = [{ id: 'fault', label: PHASE_LABELS.fault, atMs: 0, node: fault.node, detail: `${fault.description}${took}` }];
  const seen = PHASE_ORDER.slice(1)
    .map((id, i) => ({ id, i, f: found.get(id) }))
    .filter((x): x is { id: PhaseId; i: number; f: { t: number; node: string; detail?: string; evidence: Evidence } } => !!x.f && !('missing' in x.f))
    .sort((a, b) => a.f.t - b.f.t || a.i - b.i);
  let prevT = fault.t;
  for (const { id, f } of seen) {
    phases.push({ id, label: id === 'carrier_lost' && fault.kind === 'failback' ? 'carrier back (the primary returns)' : PHASE_LABELS[id], atMs: round(f.t - fault.t), sincePrevMs: round(f.t - prevT), node: f.node, ...(f.detail ? { detail: f.detail } : {}), evidence: f.evidence });
    prevT = f.t;
  }
  for (const id of PHASE_ORDER.slice(1)) {
    const f = found.get(id);
    if (f && 'missing' in f) phases.push({ id, label: PHASE_LABELS[id], missing: true, reason: f.missing });
  }
  const at = (id: PhaseId) => phases.find((p) => p.id === id && !p.missing)?.atMs;
  // Budgets count from when the fault took effect: a carrier command (a switch CLI over SSH) can
  // take a second before the link drops, and that is the lab's time, not the failover's.
  const effect = EFFECT_SEEN.includes(fault.kind) ? at('carrier_lost') : undefined;
  const since = (x: number | undefined) => (x === undefined ? undefined : round(x - (effect ?? 0)));
  const stalledAt = at('io_stalled');
  const resumedAt = at('io_resumed');
  return {
    ulp: c.ulp,
    connection: c.label,
    fault,
    phases,
    summary: {
      ...(effect !== undefined ? { effectMs: effect } : {}),
      ...(at('bond_failover') !== undefined ? { failoverMs: since(at('bond_failover')) } : {}),
      ...(newActive && newActive !== oldActive ? { newActiveSlave: newActive } : {}),
      ...(oldAddress ? { oldAddress } : {}),
      ...(newMac ? { newAddress: newMac } : {}),
      ...(at('established') !== undefined ? { reconnectMs: since(at('established')) } : {}),
      ...(resumedAt !== undefined ? { ioResumedMs: since(resumedAt), outageMs: round(resumedAt - (stalledAt !== undefined && stalledAt < resumedAt ? Math.max(stalledAt, effect ?? 0) : (effect ?? 0))) } : {}),
      garpCountSeen: seenByPeer.length,
      rejectsBeforeEstablished: rejects,
    },
    windowMs: round(until - fault.t),
    errorBoundMs: round(input.errorBoundMs ?? 0),
  };
}

/** Faults whose effect on the node is a carrier change it sees (carrier_lost marks when they took effect: a failback's is the carrier coming back). */
const EFFECT_SEEN = ['carrier-loss', 'admin-down', 'failback'];

function median(xs: number[]): number {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}

/** A plain-text rendering for failure messages and logs. */
export function renderTimeline(tl: Timeline, opts: { only?: PhaseId[] } = {}): string {
  const rows = tl.phases.filter((p) => !opts.only || opts.only.includes(p.id));
  const lines = [`${tl.ulp} ${tl.connection} — ${tl.fault.description} (times ±${tl.errorBoundMs} ms)`];
  for (const p of rows) {
    if (p.missing) lines.push(`  ${'—'.padStart(9)}  ${p.label.padEnd(32)} MISSING: ${p.reason ?? ''}`);
    else lines.push(`  ${`${p.atMs!.toFixed(1)} ms`.padStart(9)}  ${p.label.padEnd(32)} ${p.node ?? ''}${p.detail ? `  ${p.detail}` : ''}`);
  }
  return lines.join('\n');
}
