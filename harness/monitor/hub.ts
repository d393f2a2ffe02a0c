// The monitors' remote side: per node one tracefs instance and six streams (kernel log, trace,
// ip monitor, ARP, bond pollers, rdma res), mapped onto the controller's clock. A lab session keeps
// one hub for all its tests — started at the first test that watches a node, restarted when a
// stream of that node ended (a reboot disconnects them all), closed when the session ends — and each
// test watches through a window (MonitorSession). Starting and stopping all of it per test cost
// ~8 s of every test under TCG.
//
// Between windows the instance's tracing_on is 0: the trace buffer takes nothing and the pollers
// read it as their gate (the bond poller naps, the res poller stops running rdma), so the guest's
// one vCPU belongs to the teardown and the next test's set-up.
import { type Subscription } from 'rxjs';
import { now, span, waitFor } from '../clock.ts';
import type { Lab } from '../lab/lab.ts';
import { ClockProbe, type ClockOffset } from '../node/clock-offset.ts';
import { outsideGates } from '../node/gate.ts';
import type { Node } from '../node/node.ts';
import { newNodeClock, type NodeClock } from './clockmap.ts';
import type { BondEvent, LabEvent } from './events.ts';
import { LineMapper, type CounterSample, type SourceKind } from './mapper.ts';
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

export function monitorDefaults(lab: Lab, opts: MonitorOptions = {}): Required<MonitorOptions> {
  return {
    nodes: opts.nodes ?? lab.loaded.topology.nodes.filter((n) => n.bonds?.length).map((n) => n.name),
    bondPollMs: opts.bondPollMs ?? 50,
    resPollMs: opts.resPollMs ?? 1000,
    traceSystems: opts.traceSystems ?? ['rdma_cma', 'ib_cma', 'rpcrdma', 'sunrpc'],
    arp: opts.arp ?? true,
  };
}

/** Who hears a hub: the open windows. */
export interface HubListener {
  event(e: LabEvent): void;
  problem(text: string): void;
}

const INSTANCE_ROOT = '/sys/kernel/tracing/instances';
/** where the scripts read the interfaces (an argument: the unit test gives them a sysfs of files) */
const NET = '/sys/class/net';

/** Bash: is the gate ("$g": the instance's tracing_on; empty: none) closed? */
const GATE_CLOSED = `{ [ -n "$g" ] && on=1 && { read -r on < "$g" || on=1; } && [ "$on" = 0 ]; }`;

/** Prints "EPOCHREALTIME active|mii|address| slave=carrier…" whenever something changes
 *  ($1 the net class dir, $2 bond, $3 period, $4 gate, slaves…). While the gate is closed it polls every 0.5 s: what it
 *  prints then reaches no window, but keeps its state and the controller's in step. While it is
 *  open, each tick also prints the slaves' byte counters ("ctr EPOCHREALTIME slave=tx,rx…"): which
 *  slave carried the traffic between two moments of a test is read from these, with no command
 *  of its own at the fault or the heal (that read took 0.1–0.9 s on a guest busy failing over,
 *  and at the heal it lengthened the outage under test by as much). */
const BOND_POLL = `${NAP_SETUP}
net=$1; b=$1/$2; p=$3; g=$4; shift 4
prev=
while :; do
  read -r a < "$b/bonding/active_slave" || a=
  read -r m < "$b/bonding/mii_status" || m=
  read -r ad < "$b/address" || ad=
  c=; for s in "$@"; do x=?; read -r x < "$net/$s/carrier" 2>/dev/null; c="$c $s=$x"; done
  cur="$a|$m|$ad|$c"
  if [ "$cur" != "$prev" ]; then echo "$EPOCHREALTIME $cur"; prev=$cur; fi
  if ${GATE_CLOSED}; then ${nap('0.5')}; else
    k=; for s in "$@"; do tx=; rx=; read -r tx < "$net/$s/statistics/tx_bytes"; read -r rx < "$net/$s/statistics/rx_bytes"; k="$k $s=$tx,$rx"; done 2>/dev/null
    echo "ctr $EPOCHREALTIME$k"
    ${nap('"$p"')}
  fi
done`;

/** rdma res snapshots ($1 period, $2 gate): none while the gate is closed. */
const RES_POLL = `${NAP_SETUP}
p=$1; g=$2
while :; do
  if ${GATE_CLOSED}; then ${nap('0.25')}; continue; fi
  # The cm_id list describes some instant between the two stamps (rdma takes a while under TCG).
  s=$EPOCHREALTIME; c=$(rdma -j res show cm_id 2>/dev/null); e=$EPOCHREALTIME
  q=$(rdma -j res show qp 2>/dev/null)
  echo "@@ $s $e"; echo "\${c:-[]}" | tr -d '\\n'; echo; echo "\${q:-[]}" | tr -d '\\n'; echo
  ${nap('"$p"')}
done`;

/** Enables the systems ($@) present in instance $i whose events are all off — a module loaded (or
 *  reloaded) since the last window brings its events disabled. RPC/RDMA traces every RPC: only its
 *  connection-level and error events (not the data path), SunRPC only its failed calls. Prints
 *  the systems traced. */
const ENABLE = `for s in "$@"; do
  [ -d "$i/events/$s" ] || continue
  st=; read -r st < "$i/events/$s/enable"
  if [ "$st" = 0 ]; then
    if [ "$s" = rpcrdma ]; then
      for e in "$i/events/rpcrdma/"*/; do
        n=\${e%/}; n=\${n##*/} # no basename process per event (rpcrdma has over a hundred)
        case "$n" in *connect*|*disconnect*|*cm_event*|*qp_err*|*accept*|*removal*|*_flush|*op_set_cto|*_err|*_failed|*maperr|*sgerr) echo 1 > "$e/enable";; esac
      done
    elif [ "$s" = sunrpc ]; then
      # an RPC ended with an error (a short NFS write's cause): one event per failed task
      [ -d "$i/events/sunrpc/rpc_call_rpcerror" ] && echo 1 > "$i/events/sunrpc/rpc_call_rpcerror/enable"
    else echo 1 > "$i/events/$s/enable"; fi
  fi
  echo "traced $s"
done`;

/** cma.c queues each RDMA CM event it raises outside a callback (ADDR_CHANGE at a failover among
 *  them) and delivers it from its workqueue's handler (cma_work_handler), which drops it without a
 *  trace when the id is already being destroyed: that handler's runs are the only evidence. Traced
 *  in instance $i, filtered by the handler's address (6.1's filters take no function names), which
 *  moves whenever rdma_cm is loaded again: its offset into rdma_cm's text is found once ($cw empty:
 *  kallsyms is slow under TCG) and printed ("cmawork OFF") for the next call; without rdma_cm, or
 *  without an address (kptr_restrict), the events stay off — unfiltered they would be every work. */
const CMA_WORK = `w=$i/events/workqueue
if [ -d "$w/workqueue_execute_start" ]; then
  base=; read -r base < "\${RF_CMA_TEXT:-/sys/module/rdma_cm/sections/.text}" 2>/dev/null
  if [ -n "$base" ] && [ -z "$cw" ]; then
    a=$(grep -m1 -w cma_work_handler "\${RF_KALLSYMS:-/proc/kallsyms}"); a=\${a%% *}
    case $a in ''|*[!0-9a-f]*|0000000000000000) ;; *) cw=$(printf %x $((0x$a - base))); echo "cmawork $cw";; esac
  fi
  f=; [ -n "$base" ] && [ -n "$cw" ] && f=$(printf 'function == 0x%x' $((base + 0x$cw)))
  for e in workqueue_execute_start workqueue_execute_end; do
    if [ -n "$f" ]; then
      cur=; read -r cur < "$w/$e/filter"; [ "$cur" = "$f" ] || echo "$f" > "$w/$e/filter"
      echo 1 > "$w/$e/enable"
    else echo 0 > "$w/$e/enable"; fi
  done
fi`;

/** Creates the instance ($1) with the mono clock and enables the systems ($3…) that exist; $2 the
 *  offset of cma_work_handler, when known (CMA_WORK). */
const TRACE_INSTANCE = `i=$1; cw=$2; shift 2
mkdir "$i" && echo mono > "$i/trace_clock" && echo 4096 > "$i/buffer_size_kb" || exit 1
${ENABLE}
${CMA_WORK}`;

/** A window opens ($1 instance or "", $2 the net class dir, $3 bonds as "bond:slave,slave …", $4
 *  cma_work_handler's offset or "", then the systems): trace systems loaded since, rdma_cm's
 *  workqueue handler followed, the gate opened, each bond's state now in the bond poller's format. */
const OPEN = `i=$1; net=$2; bonds=$3; cw=$4; shift 4
if [ -n "$i" ]; then
  [ -d "$i" ] || { echo "trace instance $i is gone" >&2; exit 3; }
  ${ENABLE}
  ${CMA_WORK}
  echo 1 > "$i/tracing_on"
fi
for spec in $bonds; do
  bd=\${spec%%:*}; b=$net/$bd
  a=; m=; ad=; read -r a < "$b/bonding/active_slave"; read -r m < "$b/bonding/mii_status"; read -r ad < "$b/address"
  c=; IFS=,; for s in \${spec#*:}; do x=?; read -r x < "$net/$s/carrier" 2>/dev/null; c="$c $s=$x"; done; unset IFS
  echo "bond $bd $EPOCHREALTIME $a|$m|$ad|$c"
done`;

/** A burst of markers into the kernel log and the trace instance ($1); the clock keeps the tightest.
 *  $2 = close: then the gate closes (markers already in the buffer are still read out). */
const MARK = `exec 4>/dev/kmsg; [ -z "$1" ] || exec 5>"$1/trace_marker"
for i in 1 2 3 4 5 6 7 8; do echo "rf-sync $EPOCHREALTIME" >&4; [ -z "$1" ] || echo "rf-sync $EPOCHREALTIME" >&5; done
[ "$2" != close ] || [ -z "$1" ] || echo 0 > "$1/tracing_on"`;

/** rmdir of a tracefs instance; when it fails (EBUSY: a reader still holds it), which processes hold
 *  files in it — one fork per process, so only then. */
const REMOVE_INSTANCE = `[ ! -e "$1" ] && exit 0
rmdir "$1" 2>&1 && exit 0
for p in /proc/[0-9]*; do
  ls -l "$p/fd" 2>/dev/null | grep -q -F "$1/" && { c=; read -r c < "$p/comm"; echo "held by pid \${p#/proc/} ($c)"; }
done
exit 1`;

/** The remote scripts, for their unit test. */
export const MONITOR_SCRIPTS = { BOND_POLL, RES_POLL, TRACE_INSTANCE, OPEN, MARK, REMOVE_INSTANCE, CMA_WORK };

interface HubNode {
  name: string;
  clock: NodeClock;
  instance: string | undefined;
  markers: { kmsg: number; trace: number };
  subs: Subscription[];
  /** false once any of its streams ended: the next window restarts the node */
  alive: boolean;
  bondMappers: Map<string, LineMapper>;
  /** why there is no trace instance (told to every window: its evidence has a hole) */
  noTrace?: string;
  /** the clock probe kept open for each window's measurements */
  probe?: ClockProbe;
  /** cma_work_handler's offset into rdma_cm's text (hex), once found (CMA_WORK) */
  cmaWork?: string;
}

let hubCounter = 0;
let instanceCounter = 0;

export class MonitorHub {
  readonly lab: Lab;
  readonly opts: Required<MonitorOptions>;
  /** the journal's owner of this hub's processes */
  readonly id = `monitors-${process.pid}-${++hubCounter}`;
  private readonly nodes = new Map<string, HubNode>();
  private readonly starting = new Map<string, Promise<HubNode>>();
  private readonly listeners = new Set<HubListener>();
  private closed = false;

  constructor(lab: Lab, opts: MonitorOptions = {}) {
    this.lab = lab;
    this.opts = monitorDefaults(lab, opts);
  }

  listen(l: HubListener): () => void {
    this.listeners.add(l);
    return () => void this.listeners.delete(l);
  }

  private emit(e: LabEvent): void {
    for (const l of this.listeners) l.event(e);
  }

  private problem(text: string): void {
    for (const l of this.listeners) l.problem(text);
  }

  /** The slave byte counters the bond pollers of a node sampled (each tick while a window was
   *  open), per bond, oldest first. */
  counterSamples(name: string): { bond: string; samples: readonly CounterSample[] }[] {
    const n = this.nodes.get(name);
    return n ? [...n.bondMappers].map(([bond, m]) => ({ bond, samples: m.counterSamples() })) : [];
  }

  clock(node: string): NodeClock {
    const n = this.nodes.get(node);
    if (!n) throw new Error(`no monitors on ${node}`);
    return n.clock;
  }

  /** Opens a window on a node: its monitors started (or restarted), the trace systems loaded
   *  since enabled, the gate opened, each bond's state now emitted as a sample. */
  async open(name: string): Promise<void> {
    // Outside the opening test's gate (node/gate.ts): the streams started here serve the tests
    // after it, and a start cut short by that test's stop would leave the node's monitors half made.
    return outsideGates(() => this.openNode(name));
  }

  private async openNode(name: string): Promise<void> {
    if (this.closed) throw new Error('the monitors were closed');
    const live = this.nodes.get(name);
    if (live?.alive) {
      const ok = await span(`monitors: ${name} open`, () => this.reopen(live));
      if (ok) return;
    }
    const p = this.starting.get(name) ?? this.start(name).finally(() => this.starting.delete(name));
    this.starting.set(name, p);
    await p;
  }

  private bondSpecs(name: string): { bond: string; slaves: string[] }[] {
    return (this.lab.spec(name).bonds ?? []).map((b) => ({ bond: b.name, slaves: b.slaves.map((s) => s.name) }));
  }

  /** false: the node's monitors are not usable (instance gone): restart them. */
  private async reopen(n: HubNode): Promise<boolean> {
    const node = this.lab.node(n.name);
    const bonds = this.bondSpecs(n.name).map((b) => `${b.bond}:${b.slaves.join(',')}`).join(' ');
    const r = await node.exec(['bash', '-c', OPEN, 'mon-open', n.instance ?? '', NET, bonds, n.cmaWork ?? '', ...this.opts.traceSystems], { timeoutMs: 30_000 }).catch((e: Error) => ({ exitCode: -1, stdout: '', stderr: e.message }));
    if (r.exitCode !== 0 || !n.alive) {
      n.alive = false;
      return false;
    }
    if (n.noTrace) this.problem(n.noTrace);
    n.cmaWork = cmaWorkOf(r.stdout) ?? n.cmaWork;
    for (const line of r.stdout.split('\n')) {
      const m = /^bond (\S+) (.*)$/.exec(line);
      const mapper = m && n.bondMappers.get(m[1]!);
      // a sample at the opening is no change: whatever moved since the last window moved outside it
      if (mapper) for (const e of mapper.feed(m[2]!, now())) this.emit({ ...(e as BondEvent), changed: [] });
    }
    return true;
  }

  private async start(name: string): Promise<HubNode> {
    const old = this.nodes.get(name);
    if (old) await this.retire(old);
    const node = this.lab.node(name);
    const inst = `${INSTANCE_ROOT}/rf-${process.pid}-${++instanceCounter}`;
    // The clock and the trace instance at once (two round trips' worth of waiting).
    const probe = this.newProbe(name);
    const [offR, mkR] = await Promise.allSettled([
      span(`monitors: ${name} clock`, () => probe.measure()),
      span(`monitors: ${name} trace instance`, () => node.exec(['bash', '-c', TRACE_INSTANCE, 'mkinst', inst, old?.cmaWork ?? '', ...this.opts.traceSystems], { timeoutMs: 30_000 })),
    ]);
    const mk = mkR.status === 'fulfilled' ? mkR.value : { exitCode: -1, stdout: '', stderr: (mkR.reason as Error).message };
    // An instance made is journaled (and removed at close) even when the clock failed: no leftovers.
    if (mk.exitCode === 0) journalInstance(this.lab, name, inst);
    if (offR.status === 'rejected') {
      probe.close();
      if (mk.exitCode === 0 && (await removeInstance(node, inst)) === undefined) forgetInstance(this.lab, name, inst);
      throw offR.reason;
    }
    const off = offR.value;
    const n: HubNode = {
      name,
      clock: newNodeClock(name, off.offsetMs, off.boundMs),
      instance: mk.exitCode === 0 ? inst : undefined,
      markers: { kmsg: 0, trace: 0 },
      probe,
      subs: [],
      alive: true,
      bondMappers: new Map(),
    };
    const cmaWork = cmaWorkOf(mk.stdout) ?? old?.cmaWork;
    if (cmaWork) n.cmaWork = cmaWork;
    this.nodes.set(name, n);
    // A tracefs instance of our own: other users' tracing is left alone, and ours is removed after.
    // trace_pipe gives EOF once tracing is off and something was read (tracing_wait_pipe): the
    // gate closing at the end of a window would end a plain cat. A new reader that has read nothing
    // blocks instead, so cat is started again; a pipe that cannot be opened ends the loop (and the
    // monitor, reported).
    if (n.instance) this.stream(n, 'trace', ['sh', '-c', 'while cat "$1"; do :; done', 'tracepipe', `${inst}/trace_pipe`]);
    else {
      n.noTrace = `${name}: no rdma_cma tracing (${mk.stderr.trim() || 'tracefs unavailable'})`;
      this.problem(n.noTrace);
    }
    const gate = n.instance ? `${inst}/tracing_on` : '';
    this.stream(n, 'kmsg', ['dmesg', '-W', '-r']);
    this.stream(n, 'ipmon', ['ip', '-o', '-ts', 'monitor', 'link', 'neigh'], { TZ: 'UTC' });
    if (this.opts.arp) this.stream(n, 'arp', ['tcpdump', '-l', '-n', '-tt', '-e', '-i', 'any', 'arp']);
    for (const b of this.bondSpecs(name)) this.stream(n, 'bond', ['bash', '-c', BOND_POLL, 'bondpoll', NET, b.bond, String(this.opts.bondPollMs / 1000), gate, ...b.slaves], undefined, b.bond);
    if (this.opts.resPollMs > 0) this.stream(n, 'res', ['bash', '-c', RES_POLL, 'respoll', String(this.opts.resPollMs / 1000), gate]);
    // Markers anchor the kernel clocks and prove the kernel streams are live.
    // Markers that never come back: the window's evidence has a hole, and the next one starts afresh.
    await span(`monitors: ${name} streams live`, async () => {
      const p = await this.barrier(name, { untilLive: true });
      if (p) {
        this.problem(`${name}: ${p}`);
        n.alive = false;
      }
    });
    return n;
  }

  /** Ends a node's streams and removes its instance (kept journaled when it cannot be). */
  private async retire(n: HubNode): Promise<void> {
    n.alive = false;
    n.probe?.close();
    n.probe = undefined;
    for (const s of n.subs) s.unsubscribe();
    n.subs = [];
    const node = this.lab.node(n.name);
    await span(`monitors: ${n.name} streams end`, () => node.settle());
    const inst = n.instance;
    if (inst && (await span(`monitors: ${n.name} trace instance removed`, () => removeInstance(node, inst))) === undefined) forgetInstance(this.lab, n.name, inst);
    if (this.nodes.get(n.name) === n) this.nodes.delete(n.name);
  }

  /**
   * Writes a burst of markers and waits until all of them came back through the kernel log and the
   * trace: everything the kernel logged before it has been read. `close` closes the gate after.
   * Resolves with what went wrong (the caller names the node), or undefined.
   */
  async barrier(name: string, opts: { close?: boolean; untilLive?: boolean } = {}): Promise<string | undefined> {
    const n = this.nodes.get(name);
    if (!n) return 'no monitors';
    const deadline = now() + 10_000;
    try {
      for (;;) {
        const want = { kmsg: n.markers.kmsg + 8, trace: n.markers.trace + 8 };
        await this.lab.node(name).run(['bash', '-c', MARK, 'mark', n.instance ?? '', opts.close ? 'close' : ''], { timeoutMs: 15_000 });
        // Streams just started: `dmesg -W` reads only what is logged after it opened /dev/kmsg, and
        // nothing says when that was. A burst written before is lost to it, so bursts are written
        // until one comes back whole. Once live, one burst must come back: a loss is a hole.
        const wait = opts.untilLive ? Math.min(1000, deadline - now()) : deadline - now();
        try {
          await waitFor(`${name}: monitor markers`, () => (n.markers.kmsg >= want.kmsg && (!n.instance || n.markers.trace >= want.trace) ? true : undefined), { timeoutMs: Math.max(wait, 0), intervalMs: 20 });
          return undefined;
        } catch (e) {
          if (!opts.untilLive || now() >= deadline) throw e;
        }
      }
    } catch (e) {
      return (e as Error).message;
    }
  }

  /** The node's clock now, on the probe kept open (a new one if it ended). */
  async measureClock(name: string, samples = 5): Promise<ClockOffset> {
    const n = this.nodes.get(name);
    if (!n || this.closed) throw new Error(`no monitors on ${name}`);
    if (n.probe && !n.probe.ended) {
      try {
        return await n.probe.measure(samples);
      } catch {
        // ended under us: one more try on a new probe
      }
    }
    n.probe?.close();
    n.probe = this.newProbe(name);
    return n.probe.measure(samples);
  }

  /** A clock probe that lives as long as the node's monitors (journaled as this hub's). */
  private newProbe(name: string): ClockProbe {
    return new ClockProbe(this.lab.node(name), { owner: this.id, timeoutMs: 24 * 3600_000 });
  }

  /** Every window's clock is measured again at its end: the next one maps with the fresher offset. */
  adoptOffset(name: string, offsetMs: number, boundMs: number): void {
    const n = this.nodes.get(name);
    if (!n) return;
    n.clock.offsetMs = offsetMs;
    n.clock.boundMs = boundMs;
  }

  private stream(n: HubNode, kind: SourceKind, argv: string[], env?: Record<string, string>, bond?: string): void {
    const node = this.lab.node(n.name);
    const mapper = new LineMapper(n.clock, kind, bond ? { bond } : {});
    if (bond) n.bondMappers.set(bond, mapper);
    const ended = (why: string): void => {
      if (this.closed || !n.alive) return;
      n.alive = false;
      this.problem(`${n.name} ${kind} monitor ${why}`);
    };
    const sub = node.stream(argv, { timeoutMs: 24 * 3600_000, owner: this.id, ...(env ? { env } : {}) }).subscribe({
      next: (l) => {
        if (l.stream === 'stderr') {
          if (kind === 'arp' && /listening on|verbose output|data link type/.test(l.text)) return;
          this.problem(`${n.name} ${kind}: ${l.text}`);
          return;
        }
        for (const e of mapper.feed(l.text, l.at)) this.emit(e);
        if ((kind === 'kmsg' || kind === 'trace') && l.text.includes('rf-sync ')) n.markers[kind]++;
      },
      error: (e: Error) => ended(`ended: ${e.message}`),
      complete: () => ended('ended unexpectedly'),
    });
    n.subs.push(sub);
  }

  /** What a cleanup of leftovers must not touch while this hub runs: its live nodes' processes
   *  and trace instances. A node whose streams ended is fair game (restarted at the next window). */
  spare(): { process: (e: { node: string; owner?: string }) => boolean; instance: (node: string, inst: string) => boolean } {
    return {
      process: (e) => e.owner === this.id && !!this.nodes.get(e.node)?.alive,
      instance: (node, inst) => {
        const n = this.nodes.get(node);
        return !!n?.alive && n.instance === inst;
      },
    };
  }

  /** Ends every stream and removes the instances. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.starting.values()]);
    await Promise.all([...this.nodes.values()].map((n) => this.retire(n).catch(() => undefined)));
    this.listeners.clear();
  }
}

function journalInstance(lab: Lab, node: string, inst: string): void {
  const j = readJournal<Record<string, string[]>>('trace', lab.loaded.topology.name) ?? {};
  j[node] = [...(j[node] ?? []), inst];
  writeJournal('trace', lab.loaded.topology.name, j);
}

/** Removes a tracefs instance: undefined when it is gone (removed now, or already), else why not.
 *  A reader still holding it (a monitor not yet stopped) makes rmdir fail with EBUSY: then it
 *  stays journaled. */
export async function removeInstance(node: Node, inst: string): Promise<string | undefined> {
  const r = await node.exec(['sh', '-c', REMOVE_INSTANCE, 'rm-inst', inst], { timeoutMs: 15_000 }).catch((e: Error) => ({ exitCode: -1, stdout: e.message, stderr: '' }));
  return r.exitCode === 0 ? undefined : `${r.stdout} ${r.stderr}`.replace(/\s+/g, ' ').trim() || `exit ${r.exitCode}`;
}

export function forgetInstance(lab: Lab, node: string, inst: string): void {
  const name = lab.loaded.topology.name;
  const j = readJournal<Record<string, string[]>>('trace', name) ?? {};
  const left = (j[node] ?? []).filter((x) => x !== inst);
  if (left.length) j[node] = left;
  else delete j[node];
  if (Object.keys(j).length) writeJournal('trace', name, j);
  else clearJournal('trace', name);
}

/** The offset of cma_work_handler a remote script found (CMA_WORK's "cmawork OFF"). */
function cmaWorkOf(stdout: string): string | undefined {
  return /^cmawork ([0-9a-f]+)$/m.exec(stdout)?.[1];
}
