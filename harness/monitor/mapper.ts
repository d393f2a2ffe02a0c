// Lines → LabEvents on the controller's clock (pure, stateful per node and source).
// Kernel-clock sources wait for their first anchor marker; lines before it are held, then flushed.
import type { BondEvent, LabEvent, ResEvent } from './events.ts';
import { nodeToController, type NodeClock } from './clockmap.ts';
import { parseIpMonitor, parseKmsg, parseTcpdumpArp, parseTrace, type Stamp } from './parse.ts';
import { parseCmIds, parseQps } from '../fabric/rdma.ts';

/** The slaves' byte counters at one tick of a bond poller (controller ms). */
export interface CounterSample {
  t: number;
  slaves: Record<string, { txBytes: number; rxBytes: number }>;
}

/** Samples kept per bond: 20 a second while a window is open, so the last few minutes of a test. */
const COUNTER_SAMPLES = 6000;

export type SourceKind = 'ipmon' | 'arp' | 'trace' | 'kmsg' | 'bond' | 'res';

export class LineMapper {
  private readonly clock: NodeClock;
  private readonly kind: SourceKind;
  private held: { line: string; at: number }[] = [];
  private prevBond: BondEvent | undefined;
  private readonly counters: CounterSample[] = [];
  private resBuf: { at: number; nodeMs: number; untilMs?: number; lines: string[] } | undefined;
  /** the bond name, for the bond poller */
  private readonly bond: string;

  constructor(clock: NodeClock, kind: SourceKind, opts: { bond?: string } = {}) {
    this.clock = clock;
    this.kind = kind;
    this.bond = opts.bond ?? '';
  }

  private toController(stamp: Stamp): number | undefined {
    if (stamp.clock === 'realtime') return nodeToController(this.clock, stamp.ms);
    const k = stamp.clock === 'kmsg' ? this.clock.kmsg : this.clock.trace;
    if (!k.ready) return undefined;
    return nodeToController(this.clock, k.toRealtime(stamp.ts));
  }

  /** Feeds one line (received at `at`, controller ms); returns the events it completes. */
  feed(line: string, at: number): LabEvent[] {
    switch (this.kind) {
      case 'ipmon': {
        const p = parseIpMonitor(line);
        const t = p && this.toController(p.stamp);
        return p && t !== undefined ? [{ ...p.event, t, node: this.clock.node }] : [];
      }
      case 'arp': {
        const p = parseTcpdumpArp(line);
        const t = p && this.toController(p.stamp);
        return p && t !== undefined ? [{ ...p.event, t, node: this.clock.node }] : [];
      }
      case 'trace':
      case 'kmsg':
        return this.feedKernel(line, at);
      case 'bond':
        return this.feedBond(line);
      case 'res':
        return this.feedRes(line, at);
    }
  }

  private feedKernel(line: string, at: number): LabEvent[] {
    const p = this.kind === 'trace' ? parseTrace(line) : parseKmsg(line);
    if (!p) return [];
    const k = this.kind === 'trace' ? this.clock.trace : this.clock.kmsg;
    if ('marker' in p) {
      const ts = p.stamp.clock === 'realtime' ? 0 : p.stamp.ts;
      k.add({ kernelTs: ts, realtimeMs: p.marker });
      const held = this.held;
      this.held = [];
      return held.flatMap((h) => this.feedKernel(h.line, h.at));
    }
    const t = this.toController(p.stamp);
    if (t === undefined) {
      this.held.push({ line, at });
      return [];
    }
    return [{ ...p.event, t, node: this.clock.node }];
  }

  /** The slaves' byte counters sampled so far (the last COUNTER_SAMPLES), oldest first. */
  counterSamples(): readonly CounterSample[] {
    return this.counters;
  }

  /** Bond poller lines: "EPOCHREALTIME active|mii|address| eth0=1 eth1=0", and while a window is
   *  open "ctr EPOCHREALTIME eth0=TX,RX eth1=TX,RX" (kept as samples, not events). */
  private feedBond(line: string): LabEvent[] {
    const ctr = /^ctr (\d+[.,]\d+)((?: \S+=\d+,\d+)*)$/.exec(line);
    if (ctr) {
      const slaves: CounterSample['slaves'] = {};
      for (const kv of ctr[2]!.trim().split(/\s+/).filter(Boolean)) {
        const [k = '', v = ''] = kv.split('=');
        const [tx = '0', rx = '0'] = v.split(',');
        slaves[k] = { txBytes: Number(tx), rxBytes: Number(rx) };
      }
      this.counters.push({ t: nodeToController(this.clock, Number(ctr[1]!.replace(',', '.')) * 1000), slaves });
      if (this.counters.length > COUNTER_SAMPLES) this.counters.splice(0, this.counters.length - COUNTER_SAMPLES);
      return [];
    }
    const m = /^(\d+[.,]\d+) ([^|]*)\|([^|]*)\|([^|]*)\|(.*)$/.exec(line);
    if (!m) return [];
    const [, ts = '0', active = '', mii = '', address = '', rest = ''] = m;
    const carriers: Record<string, string> = {};
    for (const kv of rest.trim().split(/\s+/).filter(Boolean)) {
      const [k, v] = kv.split('=');
      if (k) carriers[k] = v ?? '?';
    }
    const prev = this.prevBond;
    const changed: BondEvent['changed'] = [];
    if (prev) {
      if (prev.activeSlave !== active) changed.push('active_slave');
      if (prev.address !== address) changed.push('address');
      if (prev.miiStatus !== mii) changed.push('mii_status');
      for (const [k, v] of Object.entries(carriers)) if (prev.carriers[k] !== v) changed.push(`carrier:${k}`);
    }
    const e: BondEvent = {
      source: 'bond',
      t: nodeToController(this.clock, Number(ts.replace(',', '.')) * 1000),
      node: this.clock.node,
      bond: this.bond,
      activeSlave: active,
      address,
      miiStatus: mii,
      carriers,
      changed,
      raw: line,
    };
    this.prevBond = e;
    return [e];
  }

  /** res poller: "@@ EPOCHREALTIME [EPOCHREALTIME]" (before and after the cm_id read), then the
   *  cm_id JSON line, then the qp JSON line. */
  private feedRes(line: string, at: number): LabEvent[] {
    const m = /^@@ (\d+[.,]\d+)(?: (\d+[.,]\d+))?$/.exec(line);
    if (m) {
      this.resBuf = { at, nodeMs: Number(m[1]!.replace(',', '.')) * 1000, ...(m[2] ? { untilMs: Number(m[2].replace(',', '.')) * 1000 } : {}), lines: [] };
      return [];
    }
    if (!this.resBuf) return [];
    this.resBuf.lines.push(line);
    if (this.resBuf.lines.length < 2) return [];
    const [cm = '[]', qp = '[]'] = this.resBuf.lines;
    const { nodeMs, untilMs } = this.resBuf;
    this.resBuf = undefined;
    let e: ResEvent;
    try {
      e = {
        source: 'res',
        t: nodeToController(this.clock, nodeMs),
        ...(untilMs !== undefined ? { until: nodeToController(this.clock, untilMs) } : {}),
        node: this.clock.node,
        cmIds: parseCmIds(cm).map((c) => ({ ...c })),
        qps: parseQps(qp).map((q) => ({ lqpn: q.lqpn, type: q.type, state: q.state, ifname: q.ifname, ...(q.comm ? { comm: q.comm } : {}) })),
      };
    } catch {
      return [];
    }
    return [e];
  }
}
