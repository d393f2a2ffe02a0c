// Evidence: everything a verdict is judged on, recorded during the test. Assertions and reports
// read only this; they never probe a node.
import type { LabEvent, ResEvent } from '../monitor/events.ts';
import type { Recording } from '../monitor/session.ts';
import { buildTimeline, type BondRef, type ConnectionRef, type FaultRef, type Timeline } from '../timeline/timeline.ts';
import type { WorkloadResult } from '../workload/workload.ts';

export interface ResourceCount {
  node: string;
  cmIds: number;
  qps: number;
  /** each cm_id, one line (state, owner, addresses): what a leak's message names */
  cmIdList?: string[];
}

export interface SlaveCounters {
  node: string;
  ifname: string;
  /** when a bond poller sampled it (controller ms); absent when a command read it */
  t?: number;
  txBytes: number;
  rxBytes: number;
}

export interface Evidence {
  kind: 'failover-evidence';
  faults: FaultRef[];
  bonds: BondRef[];
  connections: ConnectionRef[];
  timelines: Timeline[];
  workloads: WorkloadResult[];
  /** rdma res counts before the workloads started and after they were torn down */
  resources?: { before: ResourceCount[]; after: ResourceCount[] };
  /** slave byte counters just after the first fault and when it was healed (or at the end) */
  counters?: { before: SlaveCounters[]; after: SlaveCounters[] };
  /** kernel log patterns the topology allows, with the reason */
  allowKernel: { pattern: string; reason: string }[];
  recording: Pick<Recording, 'startedAt' | 'stoppedAt' | 'clocks' | 'errorBoundMs' | 'problems'>;
  events: LabEvent[];
}

/**
 * The timeline of `tl`'s fault looked at past the next fault, as far as a budget of `budgetMs` from
 * the fault's effect reaches (the clock bound included): for an outage that outlasted the gap
 * between two faults (a flap schedule does not wait for the ULP), where the per-fault window ends
 * before the outage does. Undefined when no later fault cut the window short of that, or the
 * connection is not in the evidence.
 */
export function timelineBeyondNextFault(ev: Evidence, tl: Timeline, budgetMs: number): Timeline | undefined {
  const until = tl.fault.t + (tl.summary.effectMs ?? 0) + budgetMs + tl.errorBoundMs;
  const cut = ev.faults.some((f) => f.t > tl.fault.t && f.t < until);
  const connection = ev.connections.find((c) => c.ulp === tl.ulp && c.label === tl.connection);
  if (!cut || !connection) return undefined;
  return buildTimeline({
    events: ev.events,
    fault: tl.fault,
    connection,
    bonds: ev.bonds,
    until: Math.min(until, ev.recording.stoppedAt),
    errorBoundMs: ev.recording.errorBoundMs,
  });
}

export function isEvidence(x: unknown): x is Evidence {
  return !!x && typeof x === 'object' && (x as { kind?: unknown }).kind === 'failover-evidence';
}

export interface EvidenceInput {
  recording: Recording;
  faults: FaultRef[];
  bonds: BondRef[];
  connections: ConnectionRef[];
  workloads?: WorkloadResult[];
  resources?: Evidence['resources'];
  counters?: Evidence['counters'];
  allowKernel?: Evidence['allowKernel'];
}

/** One timeline per (fault, connection); each covers the time until the next fault. */
export function collectEvidence(i: EvidenceInput): Evidence {
  const faults = [...i.faults].sort((a, b) => a.t - b.t);
  const timelines: Timeline[] = [];
  // Without a workload there is still the bond's part of the timeline to show.
  const connections: ConnectionRef[] = i.connections.length
    ? i.connections
    : [{ ulp: 'bond', label: 'no workload: the bond and its peers only', nodes: i.bonds.map((b) => b.node), ips: i.bonds.map((b) => b.ip) }];
  faults.forEach((f, k) => {
    const next = faults[k + 1];
    for (const c of connections) {
      timelines.push(
        buildTimeline({
          events: i.recording.events,
          fault: f,
          connection: c,
          bonds: i.bonds,
          // Up to the next fault's injection, not 1 ms short of it: a test injects the next fault
          // as soon as the progress it waited for arrives, and that progress (0.4 ms before the
          // failback in a full certification) is this fault's "I/O resumed". Events are stamped to
          // the µs; an effect of the next fault cannot precede its injection.
          until: next ? next.t - 0.001 : i.recording.stoppedAt,
          errorBoundMs: i.recording.errorBoundMs,
        }),
      );
    }
  });
  return {
    kind: 'failover-evidence',
    faults,
    bonds: i.bonds,
    connections: i.connections,
    timelines,
    workloads: i.workloads ?? [],
    ...(i.resources ? { resources: i.resources } : {}),
    ...(i.counters ? { counters: i.counters } : {}),
    allowKernel: i.allowKernel ?? [],
    recording: { startedAt: i.recording.startedAt, stoppedAt: i.recording.stoppedAt, clocks: i.recording.clocks, errorBoundMs: i.recording.errorBoundMs, problems: i.recording.problems },
    events: i.recording.events,
  };
}

export function countResources(e: ResEvent): ResourceCount {
  return {
    node: e.node,
    cmIds: e.cmIds.length,
    qps: e.qps.filter((q) => q.type !== 'GSI' && q.type !== 'SMI').length,
    cmIdList: e.cmIds.map(describeCmId),
  };
}

/** One cm_id of `rdma res`, one line: state, owner[pid], source → destination. */
export function describeCmId(c: ResEvent['cmIds'][number]): string {
  return `${c.state} ${c.comm ?? '?'}${c.pid !== undefined ? `[${c.pid}]` : ''} ${c.srcAddr ?? '-'} → ${c.dstAddr ?? '-'}`;
}

/** The cm_ids in `after` that `before` did not have (a multiset difference of their descriptions). */
export function newCmIds(before: ResourceCount | undefined, after: ResourceCount): string[] {
  const left = [...(before?.cmIdList ?? [])];
  return (after.cmIdList ?? []).filter((d) => {
    const i = left.indexOf(d);
    if (i < 0) return true;
    left.splice(i, 1);
    return false;
  });
}
