// A monitoring session over a lab: every node's streams merged into one recording of LabEvents on
// the controller's clock. Start it before the fault, stop it after: stop() re-measures the clocks,
// ends every remote command and removes the harness's tracefs instance.
import { Subject, type Observable, type Subscription } from 'rxjs';
import { now, sleep, span, waitFor } from '../clock.ts';
import type { Lab } from '../lab/lab.ts';
import { measureClockOffset } from '../node/clock-offset.ts';
import type { Node } from '../node/node.ts';
import { newNodeClock, type NodeClock } from './clockmap.ts';
import type { LabEvent, WorkloadEvent } from './events.ts';
import { LineMapper, type SourceKind } from './mapper.ts';
import { readJournal, writeJournal, clearJournal } from '../journal.ts';
import { NAP_SETUP, nap } from '../node/poll.ts';

export interface MonitorOptions {
  /** nodes to watch (default: every node with a bond) */
  nodes?: string[];
  /** bond sysfs poll period, ms */
  bondPollMs?: number;
  /** rdma res snapshot period, ms (0: off) */
  resPollMs?: number;
  /** trace systems to enable where present */
  traceSystems?: string[];
  arp?: boolean;
}

export interface ClockReport {
  node: string;
  offsetMs: number;
  boundMs: number;
  offsetAfterMs?: number;
  boundAfterMs?: number;
  /** drift of the kernel clocks against realtime over the session (ms) */
  kmsgDriftMs: number;
  traceDriftMs: number;
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

const INSTANCE_ROOT = '/sys/kernel/tracing/instances';

/** Prints "EPOCHREALTIME active|mii|address| slave=carrier…" whenever something changes. */
const BOND_POLL = `${NAP_SETUP}
b=/sys/class/net/$1; p=$2; shift 2
prev=
while :; do
  read -r a < "$b/bonding/active_slave" || a=
  read -r m < "$b/bonding/mii_status" || m=
  read -r ad < "$b/address" || ad=
  c=; for s in "$@"; do x=?; read -r x < "/sys/class/net/$s/carrier" 2>/dev/null; c="$c $s=$x"; done
  cur="$a|$m|$ad|$c"
  if [ "$cur" != "$prev" ]; then echo "$EPOCHREALTIME $cur"; prev=$cur; fi
  ${nap('"$p"')}
done`;

const RES_POLL = `${NAP_SETUP}
while :; do
  # The cm_id list describes some instant between the two stamps (rdma takes a while under TCG).
  s=$EPOCHREALTIME; c=$(rdma -j res show cm_id 2>/dev/null); e=$EPOCHREALTIME
  q=$(rdma -j res show qp 2>/dev/null)
  echo "@@ $s $e"; echo "\${c:-[]}" | tr -d '\\n'; echo; echo "\${q:-[]}" | tr -d '\\n'; echo
  ${nap('"$1"')}
done`;

/** Creates the instance ($1) with the mono clock and enables the systems ($2…) that exist. RPC/RDMA
 *  traces every RPC: only its connection-level and error events are enabled (not the data path). */
const TRACE_INSTANCE = `i=$1; shift
mkdir "$i" && echo mono > "$i/trace_clock" && echo 4096 > "$i/buffer_size_kb" || exit 1
for s in "$@"; do
  [ -d "$i/events/$s" ] || continue
  if [ "$s" = rpcrdma ]; then
    for e in "$i/events/rpcrdma/"*/; do
      n=\${e%/}; n=\${n##*/} # no basename process per event (rpcrdma has over a hundred)
      case "$n" in *connect*|*disconnect*|*cm_event*|*qp_err*|*accept*|*removal*|*_flush|*op_set_cto|*_err) echo 1 > "$e/enable";; esac
    done
  else echo 1 > "$i/events/$s/enable"; fi
  echo "$s"
done`;

/** A burst of markers into the kernel log and the trace instance ($1); the clock keeps the tightest. */
const MARK = `exec 4>/dev/kmsg; [ -z "$1" ] || exec 5>"$1/trace_marker"
for i in 1 2 3 4 5 6 7 8; do echo "rf-sync $EPOCHREALTIME" >&4; [ -z "$1" ] || echo "rf-sync $EPOCHREALTIME" >&5; done`;

let sessionCounter = 0;

export class MonitorSession {
  readonly lab: Lab;
  readonly events: LabEvent[] = [];
  readonly events$ = new Subject<LabEvent>();
  private readonly problemCounts = new Map<string, { text: string; n: number }>();
  private readonly subs: Subscription[] = [];
  private readonly clocks = new Map<string, NodeClock>();
  private readonly clockReports = new Map<string, ClockReport>();
  private readonly instances = new Map<string, string>();
  private readonly markersSeen = new Map<string, { kmsg: number; trace: number }>();
  private readonly opts: Required<MonitorOptions>;
  private startedAt = 0;
  private stopped = false;

  constructor(lab: Lab, opts: MonitorOptions = {}) {
    this.lab = lab;
    this.opts = {
      nodes: opts.nodes ?? lab.loaded.topology.nodes.filter((n) => n.bonds?.length).map((n) => n.name),
      bondPollMs: opts.bondPollMs ?? 50,
      resPollMs: opts.resPollMs ?? 1000,
      traceSystems: opts.traceSystems ?? ['rdma_cma', 'ib_cma', 'rpcrdma'],
      arp: opts.arp ?? true,
    };
  }

  /** Adds events from the harness itself (faults, steps) or a workload's stream. */
  record(e: LabEvent): void {
    if (this.stopped) return;
    this.events.push(e);
    this.events$.next(e);
  }

  /** What went wrong with a monitor, counted once per kind of message (a spinning poller repeats). */
  problem(text: string): void {
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

  clock(node: string): NodeClock {
    const c = this.clocks.get(node);
    if (!c) throw new Error(`no clock for ${node}`);
    return c;
  }

  async start(): Promise<this> {
    this.startedAt = now();
    const id = `rf-${process.pid}-${++sessionCounter}`;
    await Promise.all(this.opts.nodes.map((n) => this.startNode(this.lab.node(n), id)));
    return this;
  }

  private async startNode(node: Node, instanceName: string): Promise<void> {
    // The clock and the trace instance at once (two round trips' worth of waiting, per test).
    const inst = `${INSTANCE_ROOT}/${instanceName}`;
    const [offR, mkR] = await Promise.allSettled([span(`monitors: ${node.name} clock`, () => measureClockOffset(node)), span(`monitors: ${node.name} trace instance`, () => node.exec(['sh', '-c', TRACE_INSTANCE, 'mkinst', inst, ...this.opts.traceSystems], { timeoutMs: 30_000 }))]);
    const mk = mkR.status === 'fulfilled' ? mkR.value : { exitCode: -1, stderr: (mkR.reason as Error).message };
    // An instance made is journaled (and removed at stop) even when the clock failed: no leftovers.
    if (mk.exitCode === 0) {
      this.instances.set(node.name, inst);
      const j = readJournal<Record<string, string[]>>('trace', this.lab.loaded.topology.name) ?? {};
      j[node.name] = [...(j[node.name] ?? []), inst];
      writeJournal('trace', this.lab.loaded.topology.name, j);
    }
    if (offR.status === 'rejected') throw offR.reason;
    const off = offR.value;
    const clock = newNodeClock(node.name, off.offsetMs, off.boundMs);
    this.clocks.set(node.name, clock);
    this.clockReports.set(node.name, { node: node.name, offsetMs: off.offsetMs, boundMs: off.boundMs, kmsgDriftMs: 0, traceDriftMs: 0 });
    this.markersSeen.set(node.name, { kmsg: 0, trace: 0 });
    const spec = this.lab.spec(node.name);

    // A tracefs instance of our own: other users' tracing is left alone, and ours is removed after.
    if (mk.exitCode === 0) this.stream(node, 'trace', ['cat', `${inst}/trace_pipe`]);
    else this.problem(`${node.name}: no rdma_cma tracing (${mk.stderr.trim() || 'tracefs unavailable'})`);

    this.stream(node, 'kmsg', ['dmesg', '-W', '-r']);
    this.stream(node, 'ipmon', ['ip', '-o', '-ts', 'monitor', 'link', 'neigh'], { TZ: 'UTC' });
    if (this.opts.arp) this.stream(node, 'arp', ['tcpdump', '-l', '-n', '-tt', '-e', '-i', 'any', 'arp']);
    for (const b of spec.bonds ?? []) {
      this.stream(node, 'bond', ['bash', '-c', BOND_POLL, 'bondpoll', b.name, String(this.opts.bondPollMs / 1000), ...b.slaves.map((s) => s.name)], undefined, b.name);
    }
    if (this.opts.resPollMs > 0) this.stream(node, 'res', ['bash', '-c', RES_POLL, 'respoll', String(this.opts.resPollMs / 1000)]);

    // Markers anchor the kernel clocks and prove the kernel streams are live.
    await span(`monitors: ${node.name} streams live`, async () => {
      await sleep(300);
      await this.marker(node, 1);
    });
  }

  /** Writes burst number n (1-based) and waits until all of its markers came back. */
  private async marker(node: Node, burst: number): Promise<void> {
    const inst = this.instances.get(node.name) ?? '';
    const n = burst * 8;
    await node.run(['bash', '-c', MARK, 'mark', inst], { timeoutMs: 15_000 });
    try {
      await waitFor(
        `${node.name}: monitor markers`,
        () => {
          const m = this.markersSeen.get(node.name)!;
          return m.kmsg >= n && (!inst || m.trace >= n) ? true : undefined;
        },
        { timeoutMs: 10_000, intervalMs: 20 },
      );
    } catch (e) {
      this.problem(`${node.name}: ${(e as Error).message}`);
    }
  }

  private stream(node: Node, kind: SourceKind, argv: string[], env?: Record<string, string>, bond?: string): void {
    const clock = this.clocks.get(node.name)!;
    const mapper = new LineMapper(clock, kind, bond ? { bond } : {});
    const seen = this.markersSeen.get(node.name)!;
    const sub = node.stream(argv, { timeoutMs: 6 * 3600_000, ...(env ? { env } : {}) }).subscribe({
      next: (l) => {
        if (l.stream === 'stderr') {
          if (kind === 'arp' && /listening on|verbose output|data link type/.test(l.text)) return;
          this.problem(`${node.name} ${kind}: ${l.text}`);
          return;
        }
        for (const e of mapper.feed(l.text, l.at)) this.record(e);
        if ((kind === 'kmsg' || kind === 'trace') && l.text.includes('rf-sync ')) seen[kind]++;
      },
      error: (e: Error) => {
        if (!this.stopped) this.problem(`${node.name} ${kind} monitor ended: ${e.message}`);
      },
      complete: () => {
        if (!this.stopped) this.problem(`${node.name} ${kind} monitor ended unexpectedly`);
      },
    });
    this.subs.push(sub);
  }

  /** Ends the session; returns the recording. Safe to call twice. */
  async stop(): Promise<Recording> {
    if (!this.stopped) {
      // Final markers bound the clock drift over the session; then stop everything.
      await Promise.all(
        [...this.clocks.keys()].map(async (n) => {
          const node = this.lab.node(n);
          const count = this.markersSeen.get(n)!;
          const r = this.clockReports.get(n)!;
          // the final markers and the clock's second measurement at once
          await Promise.all([
            span(`monitors: ${n} final markers`, () => this.marker(node, Math.floor(count.kmsg / 8) + 1).catch((e: Error) => this.problem(`${n}: final marker: ${e.message}`))),
            span(`monitors: ${n} clock after`, () => measureClockOffset(node, 5)).then(
              (after) => {
                r.offsetAfterMs = after.offsetMs;
                r.boundAfterMs = after.boundMs;
              },
              (e: Error) => this.problem(`${n}: clock after: ${e.message}`),
            ),
          ]);
          r.kmsgDriftMs = this.clocks.get(n)!.kmsg.drift();
          r.traceDriftMs = this.clocks.get(n)!.trace.drift();
        }),
      );
      this.stopped = true;
      for (const s of this.subs) s.unsubscribe();
      await Promise.all(
        [...new Set([...this.clocks.keys(), ...this.instances.keys()])].map(async (n) => {
          const node = this.lab.node(n);
          await span(`monitors: ${n} streams end`, () => node.settle());
          const inst = this.instances.get(n);
          if (inst && (await span(`monitors: ${n} trace instance removed`, () => removeInstance(node, inst)))) forgetInstance(this.lab, n, inst);
        }),
      );
      this.events$.complete();
    }
    return this.snapshot();
  }

  /** What has been recorded so far (the monitors keep running unless stop() was called). */
  snapshot(): Recording {
    const clocks = [...this.clockReports.values()].map((c) => ({ ...c }));
    const errorBoundMs = Math.max(
      0,
      ...clocks.map((c) => c.boundMs + Math.abs((c.offsetAfterMs ?? c.offsetMs) - c.offsetMs) + Math.max(Math.abs(c.kmsgDriftMs), Math.abs(c.traceDriftMs))),
    );
    return { startedAt: this.startedAt, stoppedAt: now(), events: [...this.events].sort((a, b) => a.t - b.t), clocks, errorBoundMs, problems: this.problems };
  }
}

/** rmdir of a tracefs instance; true when it is gone (removed now, or already). A reader still
 *  holding it (a monitor not yet stopped) makes rmdir fail with EBUSY: then it stays journaled. */
async function removeInstance(node: Node, inst: string): Promise<boolean> {
  const r = await node.exec(['sh', '-c', '[ ! -e "$1" ] || rmdir "$1"', 'rm-inst', inst], { timeoutMs: 15_000 }).catch(() => undefined);
  return r?.exitCode === 0;
}

function forgetInstance(lab: Lab, node: string, inst: string): void {
  const name = lab.loaded.topology.name;
  const j = readJournal<Record<string, string[]>>('trace', name) ?? {};
  const left = (j[node] ?? []).filter((x) => x !== inst);
  if (left.length) j[node] = left;
  else delete j[node];
  if (Object.keys(j).length) writeJournal('trace', name, j);
  else clearJournal('trace', name);
}

/** Removes tracefs instances a killed run left behind (from the journal); an instance that cannot be
 *  removed stays journaled. Stop the processes that held them first (stopLeftoverProcesses). */
export async function cleanStaleTraceInstances(lab: Lab): Promise<string[]> {
  const j = readJournal<Record<string, string[]>>('trace', lab.loaded.topology.name);
  if (!j) return [];
  const done: string[] = [];
  for (const [node, insts] of Object.entries(j)) {
    if (!lab.nodes.has(node)) continue;
    for (const inst of insts) {
      if (await removeInstance(lab.node(node), inst)) {
        forgetInstance(lab, node, inst);
        done.push(`${node}: removed ${inst}`);
      } else done.push(`FAILED ${node}: ${inst} could not be removed`);
    }
  }
  return done;
}

export async function startMonitors(lab: Lab, opts: MonitorOptions = {}): Promise<MonitorSession> {
  return new MonitorSession(lab, opts).start();
}
