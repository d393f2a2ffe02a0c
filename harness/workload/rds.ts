// RDS over RDMA (UL-RDS-01): sequence-numbered, hashed messages in both directions over AF_RDS
// sockets bound to the bond addresses, transport forced to IB/RDMA. The tool is the project's own
// (rds_traffic.py, uploaded to each node); it counts lost, duplicated, reordered and corrupt messages.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ReplaySubject, Subject, type Subscription } from 'rxjs';
import { now } from '../clock.ts';
import type { Lab } from '../lab/lab.ts';
import type { WorkloadEvent } from '../monitor/events.ts';
import { ipOf } from '../net/ip.ts';
import type { ConnectionRef } from '../timeline/timeline.ts';
import { UndoStack } from './undo.ts';
import { modulesToLoad } from './modules.ts';
import type { Workload, WorkloadResult } from './workload.ts';

// The tool travels as an argument (python3 -c): no file on the node, so no predictable name in /tmp
// that another user could plant first (it runs as root).
const TOOL = readFileSync(fileURLToPath(new URL('./rds/rds_traffic.py', import.meta.url)), 'utf8');

export interface RdsOptions {
  nodes: [string, string];
  /** RDS socket port on both ends */
  port?: number;
  /** messages each side sends at least: traffic goes on until finish() (a test's steps may take longer than planned) */
  count?: number;
  /** messages per second per side */
  rate?: number;
  size?: number;
  /** seconds to keep receiving after sending everything */
  drainS?: number;
  /** TEST HOOK: flip a payload byte of every Nth message after it was hashed */
  corruptEvery?: number;
}

interface ToolReport {
  sent: number;
  unique: number;
  dup: number;
  reorder: number;
  corrupt: number;
  foreign: number;
  recv: number;
  send_retries: number;
  send_errors: Record<string, number>;
  blocked_ms: number;
  t: number;
  final?: boolean;
  /** sending has ended (--until-stop): `sent` is this side's total */
  stopped?: boolean;
  max_seq: number;
  missing_ranges?: [number, number][];
  sent_at?: number[];
}

export class RdsWorkload implements Workload {
  readonly name = 'rds';
  readonly ulp = 'rds' as const;
  private readonly lab: Lab;
  private readonly opts: Required<Omit<RdsOptions, 'corruptEvery'>> & { corruptEvery: number };
  private readonly subject = new Subject<WorkloadEvent>();
  readonly events$ = this.subject.asObservable();
  private readonly latest = new Map<string, ToolReport>();
  private readonly finals = new Map<string, ToolReport>();
  private readonly ended = new Map<string, Promise<void>>();
  private readonly subs: Subscription[] = [];
  private readonly errors: string[] = [];
  private readonly undo: UndoStack;
  /** each side's stdin: "go", then "stop" and the peer's total at finish() */
  private readonly control = new Map<string, ReplaySubject<string>>();
  private readonly exited = new Set<string>();
  private torn = false;
  done = 0;

  constructor(lab: Lab, opts: RdsOptions) {
    this.lab = lab;
    this.undo = new UndoStack(lab, 'rds');
    this.opts = { port: 4000, count: 2000, rate: 100, size: 6000, drainS: 40, corruptEvery: 0, ...opts };
  }

  private ip(node: string): string {
    const b = this.lab.spec(node).bonds?.[0];
    if (!b) throw new Error(`${node} has no bond`);
    return ipOf(b.address);
  }

  connection(): ConnectionRef {
    const [a, b] = this.opts.nodes;
    return {
      ulp: 'rds',
      label: `${a} ⇄ ${b} (RDS/IB, ${this.opts.count} × ${this.opts.size} B each way)`,
      nodes: [a, b],
      ips: [this.ip(a), this.ip(b)],
      workload: this.name,
      comms: [],
      kmsgDisconnect: ['RDS/IB: .*(disconnecting|dropped|shutdown)', 'RDS/IB: connection .* dropped'],
      kmsgEstablished: ['RDS/IB: (Active|Passive)? ?conn(ection)? .* (connected|is connected)', 'RDS/IB: .*connected <'],
    };
  }

  async setup(): Promise<this> {
    await Promise.all(
      this.opts.nodes.map(async (n) => {
        const node = this.lab.node(n);
        const missing = await modulesToLoad(node, ['rds', 'rds_rdma']);
        // Loaded here, unloaded at teardown: that also drops the connections RDS caches after the
        // sockets close, so the next test starts without one. Modules someone else loaded stay.
        if (missing.length) await this.undo.change({ node: n, what: `unload ${missing.join(', ')}`, kind: 'modules', modules: missing }, () => node.run(['modprobe', '-a', 'rds', 'rds_rdma'], { timeoutMs: 120_000 }));
      }),
    );
    return this;
  }

  /** Starts both sides; resolves once both sockets are bound and sending has begun. */
  async start(): Promise<void> {
    const [a, b] = this.opts.nodes;
    const runId = Math.floor(Math.random() * 1e9);
    const ready = new Set<string>();
    let readyNow: () => void = () => undefined;
    const bothReady = new Promise<void>((r) => (readyNow = r));
    for (const [me, peer] of [[a, b], [b, a]] as const) {
      const node = this.lab.node(me);
      const argv = [
        'python3', '-u', '-c', TOOL,
        '--local', this.ip(me), '--peer', this.ip(peer), '--port', String(this.opts.port),
        '--count', String(this.opts.count), '--rate', String(this.opts.rate), '--size', String(this.opts.size),
        '--run-id', String(runId), '--drain', String(this.opts.drainS), '--wait-go', '--until-stop',
        ...(this.opts.corruptEvery ? ['--corrupt-every', String(this.opts.corruptEvery)] : []),
      ];
      // A bound, not a plan: traffic runs until finish(), and the test's own deadline comes first.
      const boundS = this.opts.count / this.opts.rate + this.opts.drainS + 1800;
      const input = new ReplaySubject<string>();
      this.control.set(me, input);
      this.ended.set(
        me,
        new Promise<void>((resolve) => {
          this.subs.push(
            node.stream(argv, { timeoutMs: boundS * 1000, input }).subscribe({
              next: (l) => {
                if (l.stream === 'stderr') {
                  this.errors.push(`${me}: ${l.text}`);
                  this.subject.next({ source: 'workload', t: l.at, node: me, workload: this.name, kind: 'error', data: { text: l.text } });
                  return;
                }
                let r: ToolReport;
                try {
                  r = JSON.parse(l.text) as ToolReport;
                } catch {
                  return;
                }
                if ((r as unknown as { ready?: boolean }).ready) {
                  ready.add(me);
                  if (ready.size === 2) readyNow();
                  return;
                }
                this.latest.set(me, r);
                if (r.final) this.finals.set(me, r);
                this.done = [...this.latest.values()].reduce((s, x) => s + x.unique, 0);
                const { sent_at: _sentAt, missing_ranges: _gaps, ...data } = r;
                this.subject.next({ source: 'workload', t: l.at, node: me, workload: this.name, kind: r.final ? 'final' : 'progress', done: this.done, data });
              },
              error: (e: Error) => {
                this.errors.push(`${me}: ${e.message}`);
                this.exited.add(me);
                readyNow();
                resolve();
              },
              complete: () => {
                this.exited.add(me);
                resolve();
              },
            }),
          );
        }),
      );
    }
    const timer = setTimeout(() => readyNow(), 60_000);
    await bothReady;
    clearTimeout(timer);
    if (ready.size < 2) throw new Error(`the RDS tool did not start on ${this.opts.nodes.filter((n) => !ready.has(n)).join(', ')}: ${this.errors.join('; ')}`);
    for (const input of this.control.values()) input.next('go\n');
  }

  /** Ends sending (once each side sent at least `count`) and tells each side how many the other sent. */
  private async stopSending(timeoutMs: number): Promise<void> {
    const [a, b] = this.opts.nodes;
    for (const input of this.control.values()) input.next('stop\n');
    // each side has reported its total (or ended without one)
    const settled = (n: string) => !!this.latest.get(n)?.stopped || this.finals.has(n) || this.exited.has(n);
    const deadline = now() + timeoutMs;
    while (!(settled(a) && settled(b)) && now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (const [me, peer] of [[a, b], [b, a]] as const) {
      const total = this.latest.get(peer)?.stopped ? this.latest.get(peer)!.sent : undefined;
      // Without the peer's total the receiver drains for drainS and stops: the count then shows the gap.
      if (total !== undefined) this.control.get(me)?.next(`expect ${total}\n`);
      this.control.get(me)?.complete();
    }
  }

  async finish(timeoutMs = (this.opts.count / this.opts.rate + this.opts.drainS + 60) * 1000): Promise<WorkloadResult> {
    const started = now();
    await this.stopSending(timeoutMs);
    timeoutMs = Math.max(1000, timeoutMs - (now() - started));
    const all = Promise.all([...this.ended.values()]);
    const timedOut = await Promise.race([all.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), timeoutMs).unref())]);
    if (timedOut) this.errors.push(`traffic did not finish within ${timeoutMs} ms`);
    const [a, b] = this.opts.nodes;
    const fa = this.finals.get(a) ?? this.latest.get(a);
    const fb = this.finals.get(b) ?? this.latest.get(b);
    // Which messages were lost, and when they were sent (epoch ms): evidence for a kernel report.
    const lostOf = (fs?: ToolReport, ts?: ToolReport) => {
      const ranges: [number, number][] = [...(ts?.missing_ranges ?? [])];
      const sent = fs?.sent ?? 0;
      const top = ts?.max_seq ?? -1;
      if (sent - 1 > top) ranges.push([top + 1, sent - 1]);
      return ranges.map(([a, b]) => ({ seqs: [a, b], sentAt: [fs?.sent_at?.[a], fs?.sent_at?.[b]].map((x) => (x === undefined ? undefined : Math.round(x * 1000))) }));
    };
    const dir = (from: string, fs?: ToolReport, to?: string, ts?: ToolReport) => ({
      from,
      to,
      lostMessages: lostOf(fs, ts),
      sent: fs?.sent ?? 0,
      delivered: ts?.unique ?? 0,
      lost: (fs?.sent ?? 0) - (ts?.unique ?? 0),
      duplicated: ts?.dup ?? 0,
      reordered: ts?.reorder ?? 0,
      corrupt: ts?.corrupt ?? 0,
      foreign: ts?.foreign ?? 0,
      sendErrors: fs?.send_errors ?? {},
      final: !!fs?.final && !!ts?.final,
    });
    const dirs = [dir(a, fa, b, fb), dir(b, fb, a, fa)];
    const complete = dirs.every((d) => d.sent >= this.opts.count && d.final);
    const dataOk = complete && dirs.every((d) => d.lost === 0 && d.duplicated === 0 && d.corrupt === 0 && d.foreign === 0);
    const words = dirs
      .map((d) => `${d.from}→${d.to}: ${d.delivered}/${d.sent} delivered, ${d.lost} lost, ${d.duplicated} duplicated, ${d.corrupt} corrupt, ${d.reordered} reordered`)
      .join('; ');
    return {
      workload: this.name,
      ulp: 'rds',
      dataOk,
      summary: `${complete ? '' : `INCOMPLETE (expected at least ${this.opts.count} sent each way and a final report from both sides): `}${words}`,
      bytes: (fa?.sent ?? 0) * this.opts.size + (fb?.sent ?? 0) * this.opts.size,
      details: { directions: dirs, count: this.opts.count, size: this.opts.size, rate: this.opts.rate, finishedAt: now() },
      errors: [...this.errors],
      running: timedOut,
    };
  }

  async teardown(): Promise<void> {
    if (this.torn) return;
    this.torn = true;
    for (const c of this.control.values()) c.complete();
    for (const s of this.subs) s.unsubscribe();
    this.subject.complete();
    await Promise.all(this.opts.nodes.map((n) => this.lab.node(n).settle()));
    const failed = await this.undo.run();
    if (failed.length) throw new Error(`rds: could not undo: ${failed.join('; ')}`);
  }
}
