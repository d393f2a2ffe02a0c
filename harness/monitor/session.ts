// A test's window on the lab's monitors: every node's streams merged into one recording of
// LabEvents on the controller's clock, from start() to stop(). The streams themselves belong to a
// MonitorHub — the lab session's (kept from test to test) or, without one, the window's own (started
// and ended with it). stop() waits until every node's kernel streams delivered a burst of markers
// written after the test (nothing logged before it is still in flight) and re-measures the clocks.
import { Subject, type Observable, type Subscription } from 'rxjs';
import { now, span } from '../clock.ts';
import type { Lab } from '../lab/lab.ts';
import type { LabEvent, WorkloadEvent } from './events.ts';
import { readJournal } from '../journal.ts';
import type { NodeClock } from './clockmap.ts';
import type { CounterSample } from './mapper.ts';
import { MonitorHub, forgetInstance, removeInstance, type HubListener, type MonitorOptions } from './hub.ts';

export type { MonitorOptions } from './hub.ts';

export interface ClockReport {
  node: string;
  offsetMs: number;
  boundMs: number;
  offsetAfterMs?: number;
  boundAfterMs?: number;
  /** drift of the kernel clocks against realtime over the window (ms) */
  kmsgDriftMs: number;
  traceDriftMs: number;
}

/** The worst-case error of one node's mapped event times, ms (the recording's bound is the worst
 *  over its nodes). */
export function clockErrorMs(c: ClockReport): number {
  return c.boundMs + Math.abs((c.offsetAfterMs ?? c.offsetMs) - c.offsetMs) + Math.max(Math.abs(c.kmsgDriftMs), Math.abs(c.traceDriftMs));
}

export interface Recording {
  startedAt: number;
  stoppedAt: number;
  events: LabEvent[];
  clocks: ClockReport[];
  /** the worst-case error of a mapped event time, ms */
  errorBoundMs: number;
  problems: string[];
}

/**
 * What a window takes of the hub's events: everything stamped from its start on; of what happened
 * before (lines of the previous test's teardown still in flight), only bond samples — as state,
 * not as a change inside the window.
 */
export function admit(e: LabEvent, startedAt: number): LabEvent | undefined {
  if (e.t >= startedAt) return e;
  if (e.source === 'bond') return e.changed.length ? { ...e, changed: [] } : e;
  return undefined;
}

export class MonitorSession implements HubListener {
  readonly lab: Lab;
  readonly events: LabEvent[] = [];
  readonly events$ = new Subject<LabEvent>();
  private readonly problemCounts = new Map<string, { text: string; n: number }>();
  private readonly subs: Subscription[] = [];
  private readonly clockReports = new Map<string, ClockReport>();
  /** each node's newest kernel-clock anchors at the start: the window's drift is measured from them */
  private readonly anchorsAtStart = new Map<string, { kmsg: number | undefined; trace: number | undefined }>();
  private readonly hub: MonitorHub;
  /** the window's own hub (no lab session's): ended with the window */
  private readonly ownHub: boolean;
  private readonly nodes: string[];
  private unlisten: (() => void) | undefined;
  private startedAt = 0;
  private stopped = false;

  /** A node's clock (its offset from the controller), while its monitors run. */
  clockOf(node: string): NodeClock | undefined {
    try {
      return this.hub.clock(node);
    } catch {
      return undefined;
    }
  }

  /** The slave byte counters a node's bond pollers sampled (hub.ts BOND_POLL), per bond. */
  counterSamples(node: string): { bond: string; samples: readonly CounterSample[] }[] {
    return this.hub.counterSamples(node);
  }

  constructor(lab: Lab, opts: MonitorOptions = {}, hub?: MonitorHub) {
    this.lab = lab;
    this.hub = hub ?? new MonitorHub(lab, opts);
    this.ownHub = !hub;
    this.nodes = this.hub.opts.nodes;
  }

  /** Adds events from the harness itself (faults, steps) or a workload's stream. */
  record(e: LabEvent): void {
    if (this.stopped) return;
    this.events.push(e);
    this.events$.next(e);
  }

  /** From the hub: an event of the monitored nodes. */
  event(e: LabEvent): void {
    const a = admit(e, this.startedAt);
    if (a) this.record(a);
  }

  /** What went wrong with a monitor, counted once per kind of message (a spinning poller repeats). */
  problem(text: string): void {
    if (this.stopped) return;
    const key = text.replace(/\d+/g, 'N');
    const p = this.problemCounts.get(key);
    if (p) p.n++;
    else if (this.problemCounts.size < 50) this.problemCounts.set(key, { text, n: 1 });
  }

  get problems(): string[] {
    return [...this.problemCounts.values()].map((p) => (p.n > 1 ? `${p.text} (×${p.n})` : p.text));
  }

  attach(events: Observable<WorkloadEvent>): void {
    this.subs.push(events.subscribe({ next: (e) => this.record(e), error: (e: Error) => this.problem(`workload stream: ${e.message}`) }));
  }

  async start(): Promise<this> {
    this.startedAt = now();
    this.unlisten = this.hub.listen(this);
    const opened = await Promise.allSettled(this.nodes.map((n) => this.hub.open(n)));
    const failed = opened.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      await this.stop().catch(() => undefined);
      throw failed.reason;
    }
    for (const n of this.nodes) {
      const c = this.hub.clock(n);
      this.clockReports.set(n, { node: n, offsetMs: c.offsetMs, boundMs: c.boundMs, kmsgDriftMs: 0, traceDriftMs: 0 });
      this.anchorsAtStart.set(n, { kmsg: c.kmsg.lastTs, trace: c.trace.lastTs });
    }
    return this;
  }

  /** Waits until everything the nodes' kernels logged and traced until now has been read (a burst
   *  of markers through each node's streams); what went wrong is a problem of the recording. */
  async flush(): Promise<void> {
    if (this.stopped) return;
    await Promise.all(
      [...this.clockReports.keys()].map(async (n) => {
        const p = await span(`monitors: ${n} flush`, () => this.hub.barrier(n));
        if (p) this.problem(`${n}: flush marker: ${p}`);
      }),
    );
  }

  /** Ends the window; returns the recording. Safe to call twice. */
  async stop(): Promise<Recording> {
    if (!this.stopped) {
      // Final markers bound the clock drift over the window and flush the kernel streams; the
      // clock's second measurement at once. The markers close the gate of a kept hub.
      await Promise.all(
        [...this.clockReports.keys()].map(async (n) => {
          const r = this.clockReports.get(n)!;
          await Promise.all([
            span(`monitors: ${n} final markers`, async () => {
              const p = await this.hub.barrier(n, { close: !this.ownHub });
              if (p) this.problem(`${n}: final marker: ${p}`);
            }),
            span(`monitors: ${n} clock after`, () => this.hub.measureClock(n, 5)).then(
              (after) => {
                r.offsetAfterMs = after.offsetMs;
                r.boundAfterMs = after.boundMs;
              },
              (e: Error) => this.problem(`${n}: clock after: ${e.message}`),
            ),
          ]);
          const c = this.hub.clock(n);
          const since = this.anchorsAtStart.get(n);
          r.kmsgDriftMs = c.kmsg.drift(since?.kmsg);
          r.traceDriftMs = c.trace.drift(since?.trace);
        }),
      );
      this.stopped = true;
      this.unlisten?.();
      for (const s of this.subs) s.unsubscribe();
      // The next window maps with the offset measured last.
      for (const r of this.clockReports.values()) if (r.offsetAfterMs !== undefined && r.boundAfterMs !== undefined) this.hub.adoptOffset(r.node, r.offsetAfterMs, r.boundAfterMs);
      if (this.ownHub) await this.hub.close();
      this.events$.complete();
    }
    return this.snapshot();
  }

  /** What has been recorded so far (the monitors keep running unless stop() was called). */
  snapshot(): Recording {
    const clocks = [...this.clockReports.values()].map((c) => ({ ...c }));
    const errorBoundMs = Math.max(0, ...clocks.map(clockErrorMs));
    return { startedAt: this.startedAt, stoppedAt: now(), events: [...this.events].sort((a, b) => a.t - b.t), clocks, errorBoundMs, problems: this.problems };
  }
}

/** Removes tracefs instances a killed run left behind (from the journal); an instance that cannot be
 *  removed stays journaled. Stop the processes that held them first (stopLeftoverProcesses). */
export async function cleanStaleTraceInstances(lab: Lab, spare: (node: string, inst: string) => boolean = () => false, deaf: ReadonlySet<string> = new Set()): Promise<string[]> {
  const j = readJournal<Record<string, string[]>>('trace', lab.loaded.topology.name);
  if (!j) return [];
  const done: string[] = [];
  for (const [node, insts] of Object.entries(j)) {
    if (!lab.nodes.has(node)) continue;
    if (deaf.has(node)) {
      done.push(`FAILED ${node}: ${insts.length} trace instance(s) not removed: the node does not answer`);
      continue;
    }
    for (const inst of insts) {
      if (spare(node, inst)) continue; // a live monitor's (this run's session-long monitors)
      const why = await removeInstance(lab.node(node), inst);
      if (why === undefined) {
        forgetInstance(lab, node, inst);
        done.push(`${node}: removed ${inst}`);
      } else done.push(`FAILED ${node}: ${inst} could not be removed: ${why}`);
    }
  }
  return done;
}

