// Mapping node timestamps onto the controller's clock (pure).
//
// Node realtime → controller: subtract the node's measured offset (± its bound).
// Kernel timestamps (kernel log: local_clock; trace: the instance's trace clock) → node realtime:
// through anchors — marker lines the harness writes carrying the node's realtime
// ($EPOCHREALTIME, no fork), which come back stamped with the kernel's clock.

export interface Anchor {
  /** kernel clock reading, seconds */
  kernelTs: number;
  /** node realtime at the marker write, epoch ms */
  realtimeMs: number;
}

export class KernelClock {
  private readonly anchors: Anchor[] = [];

  /** Adds a marker. Markers come in bursts: the realtime was read a moment before the write that
   *  the kernel stamped, and under a loaded host (TCG vCPUs get descheduled) that moment can be long.
   *  Within a burst the marker with the largest realtime − kernel time had the shortest delay: keep it. */
  add(a: Anchor): void {
    const near = this.anchors.findIndex((x) => Math.abs(x.kernelTs - a.kernelTs) < 1);
    if (near >= 0) {
      const x = this.anchors[near]!;
      if (a.realtimeMs - a.kernelTs * 1000 > x.realtimeMs - x.kernelTs * 1000) this.anchors[near] = a;
      return;
    }
    this.anchors.push(a);
    this.anchors.sort((x, y) => x.kernelTs - y.kernelTs);
  }

  get ready(): boolean {
    return this.anchors.length > 0;
  }

  get count(): number {
    return this.anchors.length;
  }

  /** Node realtime (epoch ms) for a kernel timestamp: the nearest anchor, or linear between two. */
  toRealtime(kernelTs: number): number {
    const a = this.anchors;
    if (!a.length) throw new Error('no clock anchor yet');
    if (a.length === 1 || kernelTs <= a[0]!.kernelTs) return a[0]!.realtimeMs + (kernelTs - a[0]!.kernelTs) * 1000;
    const last = a[a.length - 1]!;
    if (kernelTs >= last.kernelTs) return last.realtimeMs + (kernelTs - last.kernelTs) * 1000;
    const i = a.findIndex((x) => x.kernelTs > kernelTs);
    const lo = a[i - 1]!;
    const hi = a[i]!;
    const f = (kernelTs - lo.kernelTs) / (hi.kernelTs - lo.kernelTs);
    return lo.realtimeMs + f * (hi.realtimeMs - lo.realtimeMs);
  }

  /** The kernel time of the newest anchor (undefined before the first). */
  get lastTs(): number | undefined {
    return this.anchors[this.anchors.length - 1]?.kernelTs;
  }

  /** How much the kernel clock drifted against realtime between the first anchor (from `sinceTs`
   *  on: a test's window over monitors that ran before it) and the last one (ms). */
  drift(sinceTs = -Infinity): number {
    const a = this.anchors.filter((x) => x.kernelTs >= sinceTs);
    if (a.length < 2) return 0;
    const first = a[0]!;
    const last = a[a.length - 1]!;
    return last.realtimeMs - first.realtimeMs - (last.kernelTs - first.kernelTs) * 1000;
  }
}

export interface NodeClock {
  node: string;
  /** node realtime − controller time, ms */
  offsetMs: number;
  boundMs: number;
  kmsg: KernelClock;
  trace: KernelClock;
}

export function newNodeClock(node: string, offsetMs: number, boundMs: number): NodeClock {
  return { node, offsetMs, boundMs, kmsg: new KernelClock(), trace: new KernelClock() };
}

export function nodeToController(clock: NodeClock, nodeRealtimeMs: number): number {
  return nodeRealtimeMs - clock.offsetMs;
}

/** "2026-11-25T15:43:56.125804" (UTC, as `TZ=UTC ip -ts` prints it) → epoch ms */
export function parseIsoUtc(s: string): number {
  const m = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?$/.exec(s);
  if (!m) return NaN;
  const frac = m[7] ? Number(`0.${m[7]}`) * 1000 : 0;
  return Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])) + frac;
}

/** The marker text: "rf-sync <EPOCHREALTIME>" */
export const MARKER_RE = /rf-sync (\d+\.\d+)/;
