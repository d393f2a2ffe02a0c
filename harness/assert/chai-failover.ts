// chai assertions on failover evidence. They judge what was recorded, never probe a node, and a
// failure message carries the slice of the timeline that matters.
//
//   expect(ev).to.have.failedOverTo('eth1').within(2000)
//   expect(ev).to.have.reconnected('rds', { via: 'eth1', within: 10_000 })
//   expect(ev).to.have.gratuitousArpSeenBy('node-b', { count: 1 })
//   expect(ev).to.have.addrChangeDeliveredTo()            // every id bound to the bond, exactly once
//   expect(ev).to.have.actedOnUnreachable('iser', { within: 2000 })
//   expect(ev).to.have.actedOnAddrChange('nfs', { within: 2000 })   // e.g. a server's connections
//   expect(ev).to.have.deliveredEverything()
//   expect(ev).to.have.noKernelWarnings()
//   expect(ev).to.have.noResourceLeak()
import * as chai from 'chai';
import type { CmaEvent, KmsgEvent, BondEvent, ResEvent, LabEvent } from '../monitor/events.ts';
import { kernelLogFindings } from '../health/health.ts';
import { clockErrorMs } from '../monitor/session.ts';
import { newActiveInLog, renderTimeline, type PhaseId, type Timeline } from '../timeline/timeline.ts';
import { isEvidence, newCmIds, timelineBeyondNextFault, type Evidence, type ResourceCount } from './evidence.ts';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Chai {
    interface Assertion {
      failedOverTo(slave: string, opts?: FaultSelector): Assertion;
      failedOver(opts?: FaultSelector): Assertion;
      reconnected(ulp: string, opts: { via?: string; within: number }): Assertion;
      gratuitousArpSeenBy(node: string, opts?: { count?: number; atLeast?: number }): Assertion;
      gratuitousArpSpaced(opts: { delayMs: number; tickMs: number }): Assertion;
      addrChangeDeliveredTo(ids?: { node: string; cmId: number }[]): Assertion;
      actedOnUnreachable(ulp: string, opts: { within: number; why?: string }): Assertion;
      actedOnAddrChange(ulp: string, opts: { within: number; why?: string }): Assertion;
      noFailoverStorm(node: string, opts: { drops: number }): Assertion;
      noSpuriousAddrChange(node: string): Assertion;
      deliveredEverything(): Assertion;
      noKernelWarnings(): Assertion;
      noResourceLeak(opts?: { node?: string }): Assertion;
    }
    interface NumericComparison {
      /** after failedOverTo / failedOver: the failover happened within ms of each fault */
      within(ms: number): Assertion;
    }
  }
}


function evidenceOf(obj: unknown): Evidence {
  if (!isEvidence(obj)) throw new TypeError('expected failover evidence (collectEvidence(...))');
  return obj;
}

/** Which faults an assertion is about: by node, kind, or position (0-based) in the test. */
export interface FaultSelector {
  node?: string;
  kind?: string;
  index?: number;
}

/** One timeline per fault (bond phases do not depend on the connection). */
function perFault(ev: Evidence, sel: FaultSelector = {}): Timeline[] {
  const seen = new Set<number>();
  return ev.timelines.filter((t) => {
    if (sel.node && t.fault.node !== sel.node) return false;
    if (sel.kind && t.fault.kind !== sel.kind) return false;
    if (sel.index !== undefined && ev.faults.findIndex((f) => f.t === t.fault.t) !== sel.index) return false;
    if (seen.has(t.fault.t)) return false;
    seen.add(t.fault.t);
    return true;
  });
}

const SLICE_FAILOVER: PhaseId[] = ['fault', 'carrier_lost', 'bond_failover', 'bond_address'];
const SLICE_RECONNECT: PhaseId[] = ['fault', 'bond_failover', 'addr_change', 'disconnected', 'addr_resolved', 'established', 'io_stalled', 'io_resumed'];
/** The longest jiffy of a kernel we test (HZ=100): how much earlier than its delay a timer may run. */
const JIFFY_MS = 10;
const SLICE_GARP: PhaseId[] = ['fault', 'bond_failover', 'bond_address', 'garp_sent', 'garp_seen', 'neigh_updated'];

/** A cm_id connected over a bond at some instant, and when it recorded its source hardware address. */
export interface BoundId {
  cmId: number;
  /** when its address was bound: an active id's ADDR_RESOLVED, a passive id's CONNECT_REQUEST
   *  (undefined: it existed before the monitors started) */
  boundAt?: number;
}

/** cm_ids on `node` with source address `ip` that were connected at time t (rdma_cma trace). */
export function boundIdsAt(ev: Evidence, node: string, ip: string, t: number): BoundId[] {
  const state = new Map<number, BoundId>();
  const boundAt = new Map<number, number>();
  // Start from the last rdma res snapshot taken wholly before t (ids created before the monitors
  // started; `rdma res` takes a while, so its list may describe a moment well after its first
  // stamp), then replay the trace from that first stamp: it knows exactly what was created or
  // destroyed since (replaying what the snapshot already shows changes nothing).
  const snap = ev.events.filter((e): e is ResEvent => e.source === 'res' && e.node === node && (e.until ?? e.t) < t).pop();
  for (const c of snap?.cmIds ?? []) {
    if (c.cmIdn !== undefined && c.srcAddr?.startsWith(`${ip}:`) && (c.state === 'LISTEN' || c.state === 'CONNECT')) state.set(c.cmIdn, { cmId: c.cmIdn });
  }
  for (const e of ev.events) {
    if (e.t >= t) break;
    if (e.source !== 'cma' || e.node !== node || e.cmId === undefined) continue;
    // The source address (and hardware address) an id records: an active id when its address
    // resolves, a passive one when the listener's CONNECT_REQUEST creates it (cma_ib_new_conn_id).
    if (e.point === 'cm_event_handler' && (e.event === 'ADDR_RESOLVED' || e.event === 'CONNECT_REQUEST')) boundAt.set(e.cmId, e.t);
    if (snap && e.t < snap.t) continue;
    if (e.point === 'cm_id_destroy') state.delete(e.cmId);
    // A listener bound to the bond's address is bound to the bond too (cma_netdev_change checks
    // bound_dev_if): it gets ADDR_CHANGE. (A passive side's attach shows the listener's id: skip it.)
    // (cm.id=0 there is no id: the cm_id_attach tracepoint fires before restrack numbers a new id —
    // measured on 6.1: every RDS reconnect shows "cm_id_attach cm.id=0", then ADDR_RESOLVED cm.id=12.)
    else if (e.point === 'cm_id_attach' && e.cmId !== 0 && e.src?.startsWith(`${ip}:`) && !e.dst) state.set(e.cmId, { cmId: e.cmId });
    else if (e.point === 'cm_event_handler' && (e.event === 'ESTABLISHED' || e.event === 'CONNECT_RESPONSE') && e.src?.startsWith(`${ip}:`)) state.set(e.cmId, { cmId: e.cmId });
    else if (e.point === 'cm_event_handler' && ENDS.has(e.event ?? '')) state.delete(e.cmId);
  }
  return [...state.values()].map((b) => (boundAt.has(b.cmId) ? { ...b, boundAt: boundAt.get(b.cmId)! } : b)).sort((a, b) => a.cmId - b.cmId);
}

/** Events after which a cm_id no longer carries its connection. */
const ENDS = new Set(['DISCONNECTED', 'ADDR_CHANGE', 'UNREACHABLE', 'REJECTED', 'CONNECT_ERROR', 'DEVICE_REMOVAL']);

/** When the id stopped carrying its connection after t (any end event, a disconnect, its destruction). */
function endedAfter(ev: Evidence, node: string, cmId: number, t: number): CmaEvent | undefined {
  return ev.events.find(
    (e): e is CmaEvent =>
      e.source === 'cma' && e.node === node && e.cmId === cmId && e.t >= t &&
      ((e.point === 'cm_event_handler' && ENDS.has(e.event ?? '') && e.event !== 'ADDR_CHANGE') || e.point === 'cm_disconnect' || e.point === 'cm_id_destroy'),
  );
}

/** A run of rdma_cm's workqueue handler (cma_work_handler, traced by hub.ts CMA_WORK). */
export interface CmaWorkRun {
  pid: number;
  start: number;
  end: number;
  /** the events it delivered (cm_event_handler on its worker while it ran) */
  delivered: { cmId?: number; event?: string }[];
}

/** The runs of cma_work_handler on a node that started from t on, each with what it delivered. */
export function cmaWorkRuns(ev: Evidence, node: string, t: number): CmaWorkRun[] {
  const cma = ev.events.filter((e): e is CmaEvent => e.source === 'cma' && e.node === node);
  const runs: CmaWorkRun[] = [];
  for (const [i, s] of cma.entries()) {
    if (s.point !== 'workqueue_execute_start' || s.t < t) continue;
    // a worker runs one work at a time: what it traced until its end is this run's
    const rest = cma.slice(i + 1).filter((x) => x.pid === s.pid);
    const end = rest.find((x) => x.point === 'workqueue_execute_end' && x.fields.work === s.fields.work);
    if (!end) continue;
    const delivered = rest.filter((x) => x.t <= end.t && x.point === 'cm_event_handler').map((x) => ({ ...(x.cmId !== undefined ? { cmId: x.cmId } : {}), ...(x.event ? { event: x.event } : {}) }));
    runs.push({ pid: s.pid ?? -1, start: s.t, end: end.t, delivered });
  }
  return runs;
}

/** How long after the bond's "new active one" the RDMA CM may take to run its failover callback
 *  when nothing in the evidence shows it ran (measured 17–53 ms on the VM lab: it runs after every
 *  NETDEV_CHANGEADDR subscriber). */
export const CMA_CALLBACK_GRACE_MS = 500;

/** cm_ids on `node` with source address `ip` that were connected at time t (rdma_cma trace). */
export function liveIdsAt(ev: Evidence, node: string, ip: string, t: number): number[] {
  return boundIdsAt(ev, node, ip, t).map((b) => b.cmId);
}

/**
 * The bond's active slave at instant t: the latest change at or before t, from the sysfs poller or
 * from the bonding driver's own log line ("(slave X): making interface the new active one", "now
 * running without any active interface"), whichever is later. The poller alone lags: a guest's
 * shell loop is starved while the ULP recovers (CI, the VM lab as a real lab: the log said eth0 at
 * +2060 ms, the poller still eth1 at +2192 ms when the NFS client resumed).
 */
export function activeSlaveAt(events: readonly LabEvent[], node: string, bond: string | undefined, t: number): string | undefined {
  const polled = events.filter((e): e is BondEvent => e.source === 'bond' && e.node === node && (!bond || e.bond === bond) && e.t <= t).pop();
  const logged = events
    .filter((e): e is KmsgEvent => e.source === 'kmsg' && e.node === node && e.cls === 'bonding' && e.t <= t && (!bond || e.text.includes(`${bond}:`)))
    .map((e) => {
      if (/now running without any active interface/.test(e.text)) return { t: e.t, slave: '' };
      const slave = newActiveInLog(e.text);
      return slave ? { t: e.t, slave } : undefined;
    })
    .filter((x): x is { t: number; slave: string } => !!x)
    .pop();
  if (logged && (!polled || logged.t > polled.t)) return logged.slave;
  return polled?.activeSlave;
}

/** When `node`'s bond was first seen running on `slave` after `since` — provided it still does
 *  (the poller or the bonding driver's line; what was seen before `since` does not count). */
export function runsOnSince(events: readonly LabEvent[], node: string, bond: string, slave: string, since: number): number | undefined {
  const after = events.filter((e) => e.t >= since);
  if (activeSlaveAt(after, node, bond, Infinity) !== slave) return undefined;
  const seen = after.filter((e) => e.node === node && ((e.source === 'bond' && e.bond === bond && e.activeSlave === slave) || (e.source === 'kmsg' && e.cls === 'bonding' && e.text.includes(`${bond}:`) && newActiveInLog(e.text) === slave)));
  return seen.length ? Math.min(...seen.map((e) => e.t)) : undefined;
}

/**
 * The bond's hardware address over time, with the windows in which a change happened: from the
 * bonding driver's "new active one" line (kernel-stamped) to the first sample that shows the new
 * address (the poller, rtnetlink). An instant inside a window (± the clock bound) is undetermined —
 * unless it is an rdma_cma trace instant (`ip`: the bond's address) after the RDMA CM's own
 * ADDR_CHANGE for that change: the same trace clock orders the two exactly, and the RDMA CM raises
 * ADDR_CHANGE only once the bond's dev_addr is the new one (cma_netdev_callback, NETDEV_CHANGEADDR).
 */
export function bondMacAt(ev: Evidence, node: string, bond: string, t: number, boundMs: number, ip?: string): string | undefined {
  const samples = ev.events.filter((e): e is BondEvent => e.source === 'bond' && e.node === node && e.bond === bond && !!e.address);
  const changes = samples.filter((e, i) => i > 0 && e.address !== samples[i - 1]!.address);
  for (const [i, c] of changes.entries()) {
    const log = ev.events.filter((e): e is KmsgEvent => e.source === 'kmsg' && e.node === node && e.cls === 'bonding' && e.t <= c.t && /new active one|now running without/.test(e.text)).pop();
    const prev = samples.filter((x) => x.t < c.t).pop();
    const from = Math.max(log?.t ?? prev?.t ?? -Infinity, prev?.t ?? -Infinity);
    if (t >= from - boundMs && t <= c.t + boundMs) {
      // This change's ADDR_CHANGE: inside its window, and clear of the previous change's callbacks.
      const earlier = changes[i - 1];
      const proof = ip === undefined ? undefined : ev.events.find((e): e is CmaEvent => e.source === 'cma' && e.node === node && e.point === 'cm_event_handler' && e.event === 'ADDR_CHANGE' && !!e.src?.startsWith(`${ip}:`) && e.t > from - boundMs && e.t <= c.t + boundMs && (!earlier || e.t > earlier.t + CMA_CALLBACK_GRACE_MS));
      // (the bound again as a margin: an id whose address was copied just before the change and
      // attached just after the callback went by would otherwise count as bound at the new one)
      return proof && t > proof.t + boundMs ? c.address : undefined;
    }
  }
  return samples.filter((e) => e.t <= t).pop()?.address ?? samples[0]?.address;
}

/** An RDMA CM event (UNREACHABLE, ADDR_CHANGE) the kernel delivered to an established connection
 *  of a ULP, and what the ULP did next on that node. */
export interface CmEventReaction {
  node: string;
  cmId: number;
  at: number;
  /** the first reaction: the id disconnected or destroyed, or a new connection to the same peer */
  reaction?: { t: number; what: string };
  /** the next event the RDMA CM delivered to that id, when it came before any reaction: what the
   *  ULP did after it was that event's handling, not a reaction to this one */
  superseded?: { t: number; event: string; then?: string };
  /** the id's QP failed on its own before any reaction (a send naming a GID the failover removed,
   *  or the QP seen in ERR): what the ULP did after it was that failure's handling */
  qpFailed?: { t: number; what: string; then?: string };
}

/** The events a ULP must act on when they reach an established connection. */
export type ConnectionEvent = 'UNREACHABLE' | 'ADDR_CHANGE';

const REACTIONS = new Set(['cm_disconnect', 'cm_qp_destroy', 'cm_id_destroy']);

/**
 * `event` delivered to the ULP's established connections (its two ends' addresses), each with the
 * ULP's first reaction on that node: the id disconnected or destroyed (rdma_cma trace), or a new
 * connection to the same peer address resolving.
 * - UNREACHABLE: since 6.0 the RDMA CM reports it on an established connection when the neighbour
 *   entry of its peer changes to another hardware address or fails (cma.c cma_netevent_callback →
 *   cma_netevent_work_handler).
 * - ADDR_CHANGE: the node's own bond changed its address (cma.c cma_netdev_change): the connection's
 *   address vector is stale, and only the ULP can drop it — a server side cannot reconnect, so
 *   unless it disconnects, its peer learns only from its own timers.
 * An id counts once the ULP has it connected and until it ends (an end event, or the ULP's own
 * disconnect or destroy): an id the ULP already let go of has nothing left to act on.
 */
export function cmEventOnEstablished(ev: Evidence, ulp: string, event: ConnectionEvent): CmEventReaction[] {
  const conn = ev.connections.find((c) => c.ulp === ulp);
  if (!conn) return [];
  const ip = (a?: string) => a?.replace(/:\d+$/, '');
  const ours = (e: CmaEvent) => conn.ips.includes(ip(e.src) ?? '') && conn.ips.includes(ip(e.dst) ?? '');
  const out: CmEventReaction[] = [];
  for (const node of conn.nodes) {
    const cma = ev.events.filter((e): e is CmaEvent => e.source === 'cma' && e.node === node && e.cmId !== undefined);
    const established = new Set<number>();
    // Connected before the monitors started: in rdma res's first snapshot with a peer address.
    const first = ev.events.find((e): e is ResEvent => e.source === 'res' && e.node === node);
    for (const c of first?.cmIds ?? []) {
      if (c.cmIdn !== undefined && c.state === 'CONNECT' && conn.ips.includes(ip(c.srcAddr) ?? '') && conn.ips.includes(ip(c.dstAddr) ?? '')) established.add(c.cmIdn);
    }
    for (const e of cma) {
      if (e.point === 'cm_event_handler' && e.event === 'ESTABLISHED' && ours(e)) {
        established.add(e.cmId!);
        continue;
      }
      if (!established.has(e.cmId!)) continue;
      if (e.point !== 'cm_event_handler' || e.event !== event) {
        if (REACTIONS.has(e.point) || (e.point === 'cm_event_handler' && ENDS.has(e.event ?? ''))) established.delete(e.cmId!);
        continue;
      }
      established.delete(e.cmId!);
      const peer = ip(e.dst);
      const next = cma.find(
        (x) => x.t > e.t && ((x.cmId === e.cmId && REACTIONS.has(x.point)) || (x.cmId !== e.cmId && x.point === 'cm_event_handler' && x.event === 'ADDR_RESOLVED' && ip(x.dst) === peer)),
      );
      const describe = (x: CmaEvent) => (x.cmId === e.cmId ? `${x.point} of cm.id=${e.cmId}` : `a new connection (cm.id=${x.cmId} ADDR_RESOLVED)`);
      // Measured (RF-03 iSER, the bond back on the other slave): UNREACHABLE, then ADDR_CHANGE 29 ms
      // later, whose handler destroyed the QP — iSER's ADDR_CHANGE cleanup, which found the
      // connection already TERMINATING (by its UNREACHABLE handler) and never told iSCSI. A reaction
      // counts only before the next other event delivered to the same id (a repeat of the same
      // event is the same cause).
      const after = cma.find((x) => x.t > e.t && x.cmId === e.cmId && x.point === 'cm_event_handler' && x.event !== event);
      // Measured (RF-07 NFS, 6.1): svcrdma ignored ADDR_CHANGE, and its connection went down 2.2 s
      // later only because the QP's next send (a retransmission) named the GID slot the failover
      // had removed ("rdma_rxe: qp#31 Failed allocating skb"): the QP error's handling, not a
      // reaction. When that send is a reply already due, it comes within milliseconds — so a
      // reaction counts only before the id's QP fails on its own.
      const failed = qpFailedAfter(ev, node, qpnOf(ev, node, e.cmId!), e.t);
      const first = [after, failed].filter((x): x is NonNullable<typeof x> => x !== undefined).reduce<number>((m, x) => Math.min(m, x.t), Infinity);
      const own = next && next.t < first ? next : undefined;
      const superseded = !own && after && after.t === first ? after : undefined;
      out.push({
        node,
        cmId: e.cmId!,
        at: e.t,
        ...(own ? { reaction: { t: own.t, what: describe(own) } } : {}),
        ...(superseded ? { superseded: { t: superseded.t, event: superseded.event ?? superseded.point, ...(next ? { then: describe(next) } : {}) } } : {}),
        ...(!own && !superseded && failed ? { qpFailed: { t: failed.t, what: failed.what, ...(next ? { then: describe(next) } : {}) } } : {}),
      });
    }
  }
  return out;
}

/** The QP number of a cm_id on a node: from rdma res (`lqpn`) or the trace's cm_qp_create. */
function qpnOf(ev: Evidence, node: string, cmId: number): number | undefined {
  for (const e of ev.events) {
    if (e.node !== node) continue;
    if (e.source === 'res') {
      const c = e.cmIds.find((x) => x.cmIdn === cmId && x.lqpn !== undefined);
      if (c) return c.lqpn;
    } else if (e.source === 'cma' && e.cmId === cmId && e.point === 'cm_qp_create') {
      const n = Number(e.fields.qp_num);
      if (Number.isInteger(n) && n > 0) return n;
    }
  }
  return undefined;
}

/** The first sign after t that QP `qpn` failed on its own: rxe's kernel line for a send it could not
 *  build, or rdma res showing the QP in ERR/SQE. */
function qpFailedAfter(ev: Evidence, node: string, qpn: number | undefined, t: number): { t: number; what: string } | undefined {
  if (qpn === undefined) return undefined;
  const line = new RegExp(`\\bqp#${qpn}\\b.*\\bfail`, 'i');
  for (const e of ev.events) {
    if (e.node !== node || e.t <= t) continue;
    if (e.source === 'kmsg' && line.test(e.text)) return { t: e.t, what: `kernel: ${e.text.trim()}` };
    const q = e.source === 'res' ? e.qps.find((x) => x.lqpn === qpn && (x.state === 'ERR' || x.state === 'SQE')) : undefined;
    if (q) return { t: e.t, what: `rdma res: QP ${qpn} in ${q.state}` };
  }
  return undefined;
}

/** UNREACHABLE on the ULP's established connections (see cmEventOnEstablished). */
export function unreachableOnEstablished(ev: Evidence, ulp: string): CmEventReaction[] {
  return cmEventOnEstablished(ev, ulp, 'UNREACHABLE');
}

/** How a time is counted, when the fault's command took a while before the carrier dropped. */
function sinceEffect(tl: Timeline): string {
  const e = tl.summary.effectMs;
  return e !== undefined && e >= 50 ? `, counted from the carrier loss ${e} ms after the fault command was issued` : '';
}

/** The ULP acted on `event` at each of its established connections within the bound. */
function assertActedOn(a: Chai.AssertionStatic, ulp: string, event: ConnectionEvent, opts: { within: number; why?: string }): void {
  const ev = evidenceOf(a._obj);
  const t0 = ev.faults[0]?.t ?? ev.recording.startedAt;
  const rel = (t: number) => `${(t - t0).toFixed(1)} ms after the fault`;
  for (const u of cmEventOnEstablished(ev, ulp, event)) {
    const took = u.reaction ? u.reaction.t - u.at : undefined;
    const what = u.reaction
      ? `its first reaction came ${took!.toFixed(0)} ms later (${u.reaction.what} at ${rel(u.reaction.t)})`
      : u.superseded
        ? `it did not react before the RDMA CM delivered ${u.superseded.event} to that id ${(u.superseded.t - u.at).toFixed(0)} ms later${u.superseded.then ? ` (what followed, ${u.superseded.then}, was that event's handling)` : ''}`
        : u.qpFailed
          ? `it did not react before the connection's QP failed on its own ${(u.qpFailed.t - u.at).toFixed(0)} ms later (${u.qpFailed.what})${u.qpFailed.then ? `; what followed, ${u.qpFailed.then}, was that failure's handling` : ''}`
          : 'it never reacted while the test recorded';
    a.assert(
      took !== undefined && took <= opts.within,
      `${ulp} did not act on RDMA_CM_EVENT_${event} delivered to its established connection ${u.node} cm.id=${u.cmId} at ${rel(u.at)} within ${opts.within} ms: ${what}${opts.why ? `\n${opts.why}` : ''}`,
      `expected ${ulp} not to act on ${event}, but ${what}`,
    );
  }
}

export function failoverAssertions(_chai: Chai.ChaiStatic, utils: Chai.ChaiUtils): void {
  const { Assertion } = _chai;

  function checkFailover(this: Chai.AssertionStatic, slave: string | undefined, opts: FaultSelector = {}): void {
    const ev = evidenceOf(this._obj);
    const tls = perFault(ev, opts);
    this.assert(tls.length > 0, `expected a fault matching ${JSON.stringify(opts)} in the evidence, found none`, 'expected no fault');
    for (const tl of tls) {
      const p = tl.phases.find((x) => x.id === 'bond_failover');
      const got = tl.summary.newActiveSlave;
      const ok = !!p && !p.missing && (slave === undefined ? !!got && got !== tl.fault.before?.activeSlave : got === slave);
      this.assert(
        ok,
        `expected ${tl.fault.node}'s bond to fail over${slave ? ` to ${slave}` : ''} after "${tl.fault.description}", but ${p?.missing ? 'it did not' : `the new active slave is ${got ?? 'unknown'}`}\n${renderTimeline(tl, { only: SLICE_FAILOVER })}`,
        `expected ${tl.fault.node}'s bond not to fail over${slave ? ` to ${slave}` : ''}\n${renderTimeline(tl, { only: SLICE_FAILOVER })}`,
      );
    }
    utils.flag(this, 'rf.failover', tls);
  }

  Assertion.addMethod('failedOverTo', function (this: Chai.AssertionStatic, slave: string, opts?: FaultSelector) {
    checkFailover.call(this, slave, opts);
  });
  Assertion.addMethod('failedOver', function (this: Chai.AssertionStatic, opts?: FaultSelector) {
    checkFailover.call(this, undefined, opts);
  });

  Assertion.overwriteMethod('within', (_super: (...a: unknown[]) => unknown) =>
    function (this: Chai.AssertionStatic, ...args: unknown[]) {
      const tls = utils.flag(this, 'rf.failover') as Timeline[] | undefined;
      if (!tls || args.length !== 1 || typeof args[0] !== 'number') return _super.apply(this, args);
      const ms = args[0];
      for (const tl of tls) {
        // From when the fault took effect (the carrier loss), not from when its command was issued.
        const at = tl.summary.failoverMs ?? Infinity;
        // The error bound counts against the budget: a result near the limit is not a pass.
        this.assert(
          at + tl.errorBoundMs <= ms,
          `expected the failover within ${ms} ms, it took ${at.toFixed(1)} ms (±${tl.errorBoundMs} ms)${sinceEffect(tl)}\n${renderTimeline(tl, { only: SLICE_FAILOVER })}`,
          `expected the failover to take longer than ${ms} ms, it took ${at.toFixed(1)} ms`,
        );
      }
      return undefined;
    },
  );

  Assertion.addMethod('reconnected', function (this: Chai.AssertionStatic, ulp: string, opts: { via?: string; within: number }) {
    const ev = evidenceOf(this._obj);
    const tls = ev.timelines.filter((t) => t.ulp === ulp);
    this.assert(tls.length > 0, `expected a ${ulp} connection in the evidence, found none`, '');
    const errors = ev.workloads.filter((w) => w.ulp === ulp).flatMap((w) => w.errors).slice(0, 8);
    const tail = errors.length ? `\n${ulp} reported:\n  ${errors.join('\n  ')}` : '';
    for (const cut of tls) {
      // A later fault that came before this outage ended (a flap schedule does not wait for the
      // ULP) ends the fault's window, not its outage: measure it to its end, within the budget.
      const proofOf = (t: Timeline) => {
        const resumed = t.phases.find((p) => p.id === 'io_resumed');
        const hasIo = !resumed?.reason?.startsWith('no workload progress stream');
        return { hasIo, proof: hasIo ? resumed : t.phases.find((p) => p.id === 'established') };
      };
      const cutProof = proofOf(cut).proof;
      const beyond = !cutProof || cutProof.missing ? timelineBeyondNextFault(ev, cut, opts.within) : undefined;
      const tl = beyond ?? cut;
      const { hasIo, proof } = proofOf(tl);
      const addrChange = tl.phases.find((p) => p.id === 'addr_change');
      const effect = tl.summary.effectMs ?? 0;
      const took = proof?.atMs !== undefined ? Math.round((proof.atMs - effect) * 10) / 10 : undefined;
      const why = proof?.missing
        ? `no ${hasIo ? 'I/O resumed' : 're-established connection'}${addrChange && !addrChange.missing ? ` (ADDR_CHANGE was delivered at ${addrChange.atMs} ms and nothing reconnected)` : ''}${beyond ? ` within the budget, looked for past the next fault (at ${cut.windowMs} ms)` : ''}`
        : `${hasIo ? 'I/O resumed' : 'connection re-established'} after ${took} ms (±${tl.errorBoundMs} ms)${sinceEffect(tl)}${beyond ? `, after the next fault (at ${cut.windowMs} ms) had come` : ''}`;
      // connect races (both ends connecting, each rejecting the other: RDS/IB) are half the story
      const races = tl.summary.rejectsBeforeEstablished ? `\n${tl.summary.rejectsBeforeEstablished} connect attempts rejected before it was re-established` : '';
      this.assert(
        !!proof && !proof.missing && took! + tl.errorBoundMs <= opts.within,
        `expected ${ulp} to reconnect within ${opts.within} ms of "${tl.fault.description}": ${why}\n${renderTimeline(tl, { only: SLICE_RECONNECT })}${races}${tail}`,
        `expected ${ulp} not to reconnect within ${opts.within} ms, but ${why}`,
      );
      if (opts.via) {
        const atT = tl.fault.t + (proof?.atMs ?? 0);
        const active = activeSlaveAt(ev.events, tl.fault.node, tl.fault.bond, atT) ?? tl.summary.newActiveSlave;
        this.assert(
          active === opts.via,
          `expected ${ulp} to reconnect through ${opts.via}, but ${tl.fault.node}'s active slave was ${active ?? 'unknown'} when it resumed\n${renderTimeline(tl, { only: SLICE_RECONNECT })}`,
          `expected ${ulp} not to reconnect through ${opts.via}`,
        );
        if (ev.counters) {
          const d = (name: string) => {
            const b = ev.counters!.before.find((c) => c.node === tl.fault.node && c.ifname === name);
            const a = ev.counters!.after.find((c) => c.node === tl.fault.node && c.ifname === name);
            // Transmitted bytes only: a backup slave still receives what the switches flood
            // towards the new MAC until they learn it, but only the active slave transmits.
            return a && b ? a.txBytes - b.txBytes : 0;
          };
          const others = ev.bonds.find((b) => b.node === tl.fault.node)?.slaves.filter((s) => s !== opts.via) ?? [];
          const viaBytes = d(opts.via);
          const otherBytes = others.reduce((s, o) => s + d(o), 0);
          this.assert(
            viaBytes > 0 && viaBytes >= 10 * otherBytes,
            `expected the traffic after the fault to go through ${opts.via}: ${opts.via} transmitted ${viaBytes} bytes, ${others.join('+')} transmitted ${otherBytes}`,
            `expected the traffic not to go through ${opts.via}`,
          );
        }
      }
    }
  });

  Assertion.addMethod('gratuitousArpSeenBy', function (this: Chai.AssertionStatic, node: string, opts: { count?: number; atLeast?: number } = {}) {
    const ev = evidenceOf(this._obj);
    const peerBond = ev.bonds.find((b) => b.node === node);
    for (const tl of perFault(ev)) {
      const faulted = ev.bonds.find((b) => b.node === tl.fault.node);
      const until = tl.fault.t + tl.windowMs;
      // Counted on the peer's bond device: what its ARP layer received (a capture on "any" also sees
      // the same frame on each slave).
      const garps = ev.events.filter(
        (e) =>
          e.source === 'arp' && e.node === node && e.t >= tl.fault.t - tl.errorBoundMs && e.t <= until && e.gratuitous && e.direction === 'in' &&
          e.ifname === (peerBond?.bond ?? e.ifname) && e.senderIp === faulted?.ip && (!tl.summary.newAddress || e.senderMac === tl.summary.newAddress),
      );
      const n = garps.length;
      const ok = opts.count !== undefined ? n === opts.count : n >= (opts.atLeast ?? 1);
      const want = opts.count !== undefined ? `exactly ${opts.count}` : `at least ${opts.atLeast ?? 1}`;
      this.assert(
        ok,
        `expected ${node} to see ${want} gratuitous ARP(s) for ${faulted?.ip ?? '?'} with the new address ${tl.summary.newAddress ?? '?'} after "${tl.fault.description}", it saw ${n}\n${renderTimeline(tl, { only: SLICE_GARP })}`,
        `expected ${node} not to see ${want} gratuitous ARP(s), it saw ${n}`,
      );
    }
  });

  // The spacing bonding gives its announcements (peer_notif_delay), as the failing-over node sent
  // them: its own capture on the bond, in its kernel's time — at the peer, delivery jitter under
  // emulation moved a gap by 10 ms (BC-06, L0: 108.7 ms sent, 99.2 ms received). 6.1 bond_main.c:
  // the first leaves from the failover itself (bond_change_active_slave: send_peer_notif =
  // num_peer_notif × delay ticks, one sent at once); the same miimon tick counts down once more
  // (bond_mii_monitor, line 2931, with should_notify_peers read before the commit), so the second
  // goes one tick early — gaps of delay − tick, then delay. Each tick re-arms `miimon` after it ran,
  // so a gap is never shorter than that by more than a jiffy (10 ms at HZ=100), and may be late.
  Assertion.addMethod('gratuitousArpSpaced', function (this: Chai.AssertionStatic, opts: { delayMs: number; tickMs: number }) {
    const ev = evidenceOf(this._obj);
    for (const tl of perFault(ev)) {
      const faulted = ev.bonds.find((b) => b.node === tl.fault.node);
      const sent = ev.events.filter((e) => e.source === 'arp' && e.node === tl.fault.node && e.ifname === faulted?.bond && e.direction === 'out' && e.gratuitous && e.senderIp === faulted?.ip && e.t >= tl.fault.t && e.t <= tl.fault.t + tl.windowMs);
      const gaps = sent.slice(1).map((g, i) => Math.round((g.t - sent[i]!.t) * 10) / 10);
      const [lo, hi] = [opts.delayMs - opts.tickMs - JIFFY_MS, opts.delayMs + opts.tickMs + 100];
      const bad = gaps.filter((g) => g < lo || g > hi);
      this.assert(
        sent.length > 1 && !bad.length,
        `expected ${tl.fault.node}'s announcements after "${tl.fault.description}" to be ${opts.delayMs} ms apart (${lo}–${hi} ms: one miimon tick early, or late), the gaps were ${gaps.length ? gaps.map((g) => `${g} ms`).join(', ') : `none (${sent.length} sent)`}`,
        `expected ${tl.fault.node}'s announcements not to be ${opts.delayMs} ms apart, the gaps were ${gaps.join(', ')} ms`,
      );
    }
  });

  // What the kernel guarantees (cma.c cma_netdev_callback → cma_netdev_change): when it processes
  // a bond failover (NETDEV_BONDING_FAILOVER, after the address change's own notifiers), ADDR_CHANGE
  // to every cm_id then bound to the bond whose recorded source hardware address differs from the
  // bond's new one — and to no other. An id bound while the bond's address was changing is not
  // judged; nor is one whose connection ended (the peer dropped it, say) before that callback ran:
  // it is owed a reconnect (reconnected), not an ADDR_CHANGE.
  Assertion.addMethod('addrChangeDeliveredTo', function (this: Chai.AssertionStatic, ids?: { node: string; cmId: number }[]) {
    const ev = evidenceOf(this._obj);
    for (const tl of perFault(ev)) {
      const bond = ev.bonds.find((b) => b.node === tl.fault.node);
      const until = tl.fault.t + tl.windowMs;
      const changes = ev.events.filter((e): e is CmaEvent => e.source === 'cma' && e.point === 'cm_event_handler' && e.event === 'ADDR_CHANGE' && e.t >= tl.fault.t - tl.errorBoundMs && e.t <= until);
      const newMac = tl.summary.newAddress;
      const failover = tl.phases.find((p) => p.id === 'bond_failover');
      const failoverAt = failover && !failover.missing && failover.atMs !== undefined ? tl.fault.t + failover.atMs : undefined;
      // When the callback ran: its own log line ("RDMA CM addr change for ndev bond0 used by id …"),
      // or the first ADDR_CHANGE it queued.
      const callback =
        ev.events.find((e): e is KmsgEvent => e.source === 'kmsg' && e.node === tl.fault.node && e.t >= tl.fault.t - tl.errorBoundMs && e.t <= until && e.text.includes(`RDMA CM addr change for ndev ${bond?.bond ?? ''} `))?.t ??
        changes.find((c) => c.node === tl.fault.node)?.t;
      // Runs of the RDMA CM's event workqueue since the fault that delivered nothing: each dropped
      // its event, which cma_work_handler does only for an id being destroyed (or its device gone).
      const silent = cmaWorkRuns(ev, tl.fault.node, tl.fault.t).filter((r) => r.start <= until && r.delivered.length === 0);
      const live = ids ? ids.map((i) => ({ ...i, due: true, why: 'named by the test' })) : boundIdsAt(ev, tl.fault.node, bond?.ip ?? '?', tl.fault.t).map((b) => {
        const mac = b.boundAt === undefined ? tl.fault.before?.address : bondMacAt(ev, tl.fault.node, bond?.bond ?? '', b.boundAt, tl.errorBoundMs + 5, bond?.ip);
        const when = b.boundAt === undefined ? 'before the monitors started' : `at ${(b.boundAt - tl.fault.t).toFixed(0)} ms`;
        let due = mac === undefined || !newMac ? undefined : mac !== newMac;
        let why = `bound ${when} with the bond at ${mac ?? 'an address that was changing'}; the new address is ${newMac ?? '?'}`;
        const end = endedAfter(ev, tl.fault.node, b.cmId, tl.fault.t);
        // Ended clearly before the callback's own log line; or, when nothing shows the callback ran,
        // within the grace after the failover. Both are stamps of the faulted node's kernel: only
        // its clock's error counts, not the worst of all nodes' (CI at 453468f: an id ended 15 ms
        // before the callback, judged with 12.2 ms from another node, and failed "saw 0").
        const own = ev.recording.clocks.find((c) => c.node === tl.fault.node);
        const deadline = callback !== undefined ? callback - (own ? clockErrorMs(own) : tl.errorBoundMs) : failoverAt !== undefined ? failoverAt + CMA_CALLBACK_GRACE_MS : undefined;
        const gotOne = changes.some((c) => c.node === tl.fault.node && c.cmId === b.cmId);
        if (due && !gotOne && end && deadline !== undefined && end.t < deadline) {
          due = undefined;
          why += `; its connection ended at ${(end.t - tl.fault.t).toFixed(1)} ms (${end.event ?? end.point}) before the RDMA CM ${callback !== undefined ? `processed the failover (at ${(callback - tl.fault.t).toFixed(1)} ms)` : `is known to have processed the failover (${CMA_CALLBACK_GRACE_MS} ms after it)`}: owed a reconnect, not an ADDR_CHANGE`;
        }
        // Destroyed by its ULP (the peer's disconnect, its QP's error) while the ADDR_CHANGE the
        // callback queued waited for the workqueue: the run that found it destroying delivered
        // nothing, and it ended after the destroy — both stamps of one trace clock, so the order
        // is exact. A run that ended before the destroy had a live id to deliver to: no excuse.
        const destroyed = ev.events.find((e): e is CmaEvent => e.source === 'cma' && e.node === tl.fault.node && e.cmId === b.cmId && e.point === 'cm_id_destroy' && e.t >= tl.fault.t);
        const run = due && !gotOne && destroyed ? silent.find((r) => r.end > destroyed.t) : undefined;
        if (run && destroyed) {
          silent.splice(silent.indexOf(run), 1);
          due = undefined;
          why += `; its ULP destroyed it at ${(destroyed.t - tl.fault.t).toFixed(1)} ms${end && end !== destroyed ? ` (after ${end.event ?? end.point} at ${(end.t - tl.fault.t).toFixed(1)} ms)` : ''} while the RDMA CM's queued event waited: the workqueue run that took it (${(run.start - tl.fault.t).toFixed(1)}–${(run.end - tl.fault.t).toFixed(1)} ms) ended after the destroy and delivered nothing, as cma_work_handler does for an id being destroyed: owed a reconnect, not an ADDR_CHANGE`;
        }
        return { node: tl.fault.node, cmId: b.cmId, due, why };
      });
      this.assert(live.length > 0, `expected cm_ids connected over ${tl.fault.node}/${bond?.bond ?? '?'} at the fault, found none in the rdma_cma trace`, '');
      const slice = renderTimeline(tl, { only: ['fault', 'bond_failover', 'bond_address', 'addr_change'] });
      for (const id of live) {
        const n = changes.filter((c) => c.node === id.node && c.cmId === id.cmId).length;
        if (id.due === undefined) continue;
        const want = id.due ? 1 : 0;
        this.assert(n === want, `expected ${want ? 'exactly one ADDR_CHANGE' : 'no ADDR_CHANGE'} for ${id.node} cm.id=${id.cmId} after "${tl.fault.description}" (${id.why}), saw ${n}\n${slice}`, `expected no ADDR_CHANGE for ${id.node} cm.id=${id.cmId}`);
      }
      // Nothing judged at all is no proof: unless every id was excused by its connection ending
      // first, some id must have been due one.
      const excused = live.filter((l) => l.due === undefined && l.why.includes('owed a reconnect'));
      this.assert(
        live.some((l) => l.due === true) || (excused.length > 0 && live.every((l) => l.due !== false)),
        `expected some cm_id on ${tl.fault.node} to be due an ADDR_CHANGE after "${tl.fault.description}": ${live.map((l) => `cm.id=${l.cmId} ${l.why}`).join('; ')}`,
        '',
      );
      // cma_netdev_change() queues ADDR_CHANGE for every id still on the device bound to the bond
      // with the old address — whatever its state (connecting, or ended but not yet destroyed):
      // an id whose own source address (in the event) is the bond's on that node is bound to it.
      const onBond = (c: CmaEvent) => c.node === tl.fault.node && !!bond && (c.src ?? '').startsWith(`${bond.ip}:`);
      const stray = changes.filter((c) => !live.some((w) => w.node === c.node && w.cmId === c.cmId) && !onBond(c));
      this.assert(stray.length === 0, `expected ADDR_CHANGE only for ids bound to ${bond?.bond ?? 'the bond'}, but also for: ${stray.map((s) => `${s.node} cm.id=${s.cmId} ${s.src ?? ''}`).join(', ')}`, '');
    }
  });

  // A ULP told its established connection is unreachable must act on it (drop it, reconnect):
  // where the ULP's own liveness check cannot see a connection it has already written off, the
  // event is its only chance. Judged per event, not by luck: the time to the first reaction.
  Assertion.addMethod('actedOnUnreachable', function (this: Chai.AssertionStatic, ulp: string, opts: { within: number; why?: string }) {
    assertActedOn(this, ulp, 'UNREACHABLE', opts);
  });

  // A ULP whose own node's bond changed address must drop the connections bound to it (cma.c
  // cma_netdev_change delivers ADDR_CHANGE): a server side cannot reconnect, and a connection it
  // keeps stalls until the peer's own timers notice — a race, not a verdict. Judged per event.
  Assertion.addMethod('actedOnAddrChange', function (this: Chai.AssertionStatic, ulp: string, opts: { within: number; why?: string }) {
    assertActedOn(this, ulp, 'ADDR_CHANGE', opts);
  });

  // RF-06: a bond that sees short carrier drops switches at most once per drop, and ends on a slave
  // that has carrier (not left on a dead one, not ping-ponging).
  Assertion.addMethod('noFailoverStorm', function (this: Chai.AssertionStatic, node: string, opts: { drops: number }) {
    const ev = evidenceOf(this._obj);
    const samples = ev.events.filter((e): e is BondEvent => e.source === 'bond' && e.node === node);
    const switches = samples.filter((e) => e.changed.includes('active_slave') && e.activeSlave !== '');
    const last = samples[samples.length - 1];
    this.assert(switches.length <= opts.drops, `expected at most ${opts.drops} bond switch(es) on ${node} for ${opts.drops} carrier drop(s), saw ${switches.length}: ${switches.map((s) => s.activeSlave).join(' → ')}`, `expected a failover storm on ${node}`);
    this.assert(
      !!last && last.activeSlave !== '' && last.carriers[last.activeSlave] === '1',
      `expected ${node}'s bond to end on a slave with carrier, it ended on ${last?.activeSlave || 'no slave'} (carriers ${JSON.stringify(last?.carriers ?? {})})`,
      '',
    );
  });

  // RF-06: ADDR_CHANGE only for a real change of the bond's address: never more per id than the
  // bond's address changed while the test recorded.
  Assertion.addMethod('noSpuriousAddrChange', function (this: Chai.AssertionStatic, node: string) {
    const ev = evidenceOf(this._obj);
    const macChanges = ev.events.filter((e): e is BondEvent => e.source === 'bond' && e.node === node && e.changed.includes('address')).length;
    const perId = new Map<number, number>();
    for (const e of ev.events) if (e.source === 'cma' && e.node === node && e.point === 'cm_event_handler' && e.event === 'ADDR_CHANGE' && e.cmId !== undefined) perId.set(e.cmId, (perId.get(e.cmId) ?? 0) + 1);
    const spurious = [...perId].filter(([, n]) => n > macChanges);
    this.assert(
      spurious.length === 0,
      `expected no ADDR_CHANGE beyond the bond's ${macChanges} address change(s) on ${node}, but ${spurious.map(([id, n]) => `cm.id=${id} got ${n}`).join(', ')}`,
      `expected a spurious ADDR_CHANGE on ${node}`,
    );
  });

  Assertion.addMethod('deliveredEverything', function (this: Chai.AssertionStatic) {
    const ev = evidenceOf(this._obj);
    this.assert(ev.workloads.length > 0, 'expected workload results in the evidence, found none', '');
    for (const w of ev.workloads) {
      this.assert(w.dataOk, `expected ${w.workload} to deliver every byte intact: ${w.summary}${w.errors.length ? `\n${w.workload} reported:\n  ${w.errors.slice(0, 8).join('\n  ')}` : ''}`, `expected ${w.workload} to lose or corrupt data: ${w.summary}`);
    }
  });

  // The same check as the node health after every test (health.ts kernelLogFindings), on the
  // kernel log recorded during the test, with the same allow list.
  Assertion.addMethod('noKernelWarnings', function (this: Chai.AssertionStatic) {
    const ev = evidenceOf(this._obj);
    const bad = kernelLogFindings(ev.events, ev.allowKernel).filter((f) => f.kind === 'kernel-log');
    this.assert(
      bad.length === 0,
      `expected a clean kernel log, found: ${bad.map((f) => `${f.node}: ${f.detail}\n${f.evidence.slice(0, 15).map((l) => `  ${l}`).join('\n')}`).join('\n')}`,
      'expected kernel warnings',
    );
  });

  // opts.node: one node only — where every process that owned RDMA resources has exited (a live
  // process may hold a connection its peer abandoned: the kernel cannot know without traffic).
  Assertion.addMethod('noResourceLeak', function (this: Chai.AssertionStatic, opts: { node?: string } = {}) {
    const ev = evidenceOf(this._obj);
    this.assert(!!ev.resources, 'expected resource counts (before/after) in the evidence, found none', '');
    const after = ev.resources!.after.filter((a) => !opts.node || a.node === opts.node);
    this.assert(after.length > 0, `expected resource counts for ${opts.node ?? 'any node'} in the evidence, found none`, '');
    for (const a of after) {
      const b = ev.resources!.before.find((x) => x.node === a.node);
      this.assert(
        !!b && a.cmIds <= b.cmIds && a.qps <= b.qps,
        `expected ${a.node}'s RDMA resources back to the baseline: cm_id ${b?.cmIds ?? '?'} → ${a.cmIds}, qp ${b?.qps ?? '?'} → ${a.qps}${leftOver(b, a)}`,
        `expected a resource leak on ${a.node}`,
      );
    }
  });
}

/** The cm_ids a leak left, named (state, owner[pid], source → destination), when the counts carry them. */
function leftOver(before: ResourceCount | undefined, after: ResourceCount): string {
  const extra = newCmIds(before, after);
  return extra.length ? `; cm_ids not in the baseline: ${extra.join('; ')}` : '';
}

chai.use(failoverAssertions);
