// Lustre LNet over o2iblnd as a workload: the client LNet-pings the server's NID continuously
// (lnetctl ping: a GET over LNet, which o2iblnd carries over an RDMA CM connection); progress is
// the count of answered pings. At the end, LNet's own health values of the local and peer NIs
// (lnetctl net show / peer show -v 3) must be back at the maximum.
//
// A lab's LNet configuration is the lab's: the harness never adds or removes an NI. It needs an NI
// of the configured net on each node's bond, and otherwise skips (a lab precondition).
import { Subject, type Subscription } from 'rxjs';
import { now } from '../clock.ts';
import type { Lab } from '../lab/lab.ts';
import type { WorkloadEvent } from '../monitor/events.ts';
import { ipOf } from '../net/ip.ts';
import { NAP_SETUP, nap } from '../node/poll.ts';
import type { ConnectionRef } from '../timeline/timeline.ts';
import { LabPreconditionError } from './block-storage.ts';
import { LNET_MAX_HEALTH, lnetError, parseNetShow, parsePeerShow } from './lnet-parse.ts';
import type { Workload, WorkloadResult } from './workload.ts';

export interface LnetOptions {
  client: string;
  server: string;
  /** the LNet network on the bonds (default o2ib) */
  net?: string;
  /** pause between pings */
  intervalMs?: number;
}

/** Pings $1 forever; "@@ EPOCHREALTIME rc" per ping, the error document's first line on failure. */
const PINGER = `${NAP_SETUP}
while :; do
  s=$EPOCHREALTIME; out=$(lnetctl ping --timeout 1 "$1" 2>&1); rc=$?
  echo "@@ $s $rc"
  [ $rc -eq 0 ] || printf '%s\\n' "$out" | grep -m1 descr
  ${nap('"$2"')}
done`;

export class LnetWorkload implements Workload {
  readonly name = 'lnet';
  readonly ulp = 'lnet' as const;
  private readonly lab: Lab;
  private readonly o: Required<LnetOptions>;
  private readonly subject = new Subject<WorkloadEvent>();
  readonly events$ = this.subject.asObservable();
  private sub: Subscription | undefined;
  private readonly errors: string[] = [];
  private failed = 0;
  done = 0;

  constructor(lab: Lab, o: LnetOptions) {
    this.lab = lab;
    this.o = { net: 'o2ib', intervalMs: 200, ...o };
  }

  private bond(node: string): { name: string; ip: string } {
    const b = this.lab.spec(node).bonds?.[0];
    if (!b) throw new Error(`${node} has no bond`);
    return { name: b.name, ip: ipOf(b.address) };
  }

  private nid(node: string): string {
    return `${this.bond(node).ip}@${this.o.net}`;
  }

  connection(): ConnectionRef {
    return {
      ulp: 'lnet',
      label: `${this.o.client} → ${this.o.server} (LNet ping over ${this.o.net})`,
      nodes: [this.o.client, this.o.server],
      ips: [this.bond(this.o.client).ip, this.bond(this.o.server).ip],
      workload: this.name,
      kmsgDisconnect: ['LNetError: .*(o2iblnd|kiblnd).*', 'kiblnd_.*(closing|disconnect|error)'],
      kmsgEstablished: [],
    };
  }

  /** Checks the lab's LNet on both ends (read-only): an NI of the net, up, on the bond. */
  async setup(): Promise<this> {
    for (const node of [this.o.client, this.o.server]) {
      const r = await this.lab.node(node).exec(['lnetctl', 'net', 'show', '-v', '3'], { timeoutMs: 20_000 });
      const bond = this.bond(node).name;
      const ni = parseNetShow(r.stdout).find((n) => n.net === this.o.net && n.interfaces.includes(bond));
      if (r.exitCode !== 0 || !ni) {
        throw new LabPreconditionError(
          `LNet has no ${this.o.net} NI on ${node}/${bond}${r.exitCode !== 0 ? ` (lnetctl: ${lnetError(r.stdout) ?? r.stderr.trim()})` : ''}: the harness does not configure a lab's LNet — add one (lnetctl net add --net ${this.o.net} --if ${bond}) or set workloads.lnet.net`,
        );
      }
    }
    return this;
  }

  private emit(kind: WorkloadEvent['kind'], extra: Partial<WorkloadEvent> = {}): void {
    this.subject.next({ source: 'workload', t: now(), node: this.o.client, workload: this.name, kind, ...extra });
  }

  start(): Promise<void> {
    this.sub = this.lab
      .node(this.o.client)
      .stream(['bash', '-c', PINGER, 'lnetping', this.nid(this.o.server), String(this.o.intervalMs / 1000)], { timeoutMs: 6 * 3600_000 })
      .subscribe({
        next: (l) => {
          const m = /^@@ \S+ (\d+)$/.exec(l.text);
          if (m) {
            if (m[1] === '0') this.emit('progress', { done: ++this.done });
            else this.failed++;
          } else if (l.text.trim()) {
            this.errors.push(l.text.trim());
            this.emit('error', { data: { text: l.text } });
          }
        },
        error: (e: Error) => this.errors.push(`pinger: ${e.message}`),
      });
    return Promise.resolve();
  }

  /** Stops pinging; the verdict: pings answered, and LNet's health back at the maximum on both ends. */
  async finish(): Promise<WorkloadResult> {
    this.sub?.unsubscribe();
    await this.lab.node(this.o.client).settle();
    const sick: string[] = [];
    for (const node of [this.o.client, this.o.server]) {
      const nets = parseNetShow((await this.lab.node(node).exec(['lnetctl', 'net', 'show', '-v', '3'], { timeoutMs: 20_000 })).stdout).filter((n) => n.net === this.o.net);
      for (const n of nets) if (n.status !== 'up' || (n.health ?? LNET_MAX_HEALTH) < LNET_MAX_HEALTH) sick.push(`${node} local NI ${n.nid}: ${n.status}, health ${n.health ?? '?'}`);
      const peer = node === this.o.client ? this.o.server : this.o.client;
      const peers = parsePeerShow((await this.lab.node(node).exec(['lnetctl', 'peer', 'show', '-v', '3'], { timeoutMs: 20_000 })).stdout).filter((p) => p.nid === this.nid(peer));
      for (const p of peers) if ((p.health ?? LNET_MAX_HEALTH) < LNET_MAX_HEALTH) sick.push(`${node} peer NI ${p.nid}: health ${p.health}`);
    }
    const dataOk = this.done > 0 && sick.length === 0;
    return {
      workload: this.name,
      ulp: 'lnet',
      dataOk,
      summary: `${this.done} LNet pings answered, ${this.failed} failed${sick.length ? `; LNet health not back at ${LNET_MAX_HEALTH}: ${sick.join('; ')}` : `; every NI's health back at ${LNET_MAX_HEALTH}`}`,
      bytes: 0,
      details: { answered: this.done, failed: this.failed, sick },
      errors: [...this.errors.slice(0, 20), ...sick],
      // Pings are sent only while subscribed: they end when finish() begins.
      running: false,
    };
  }

  async teardown(): Promise<void> {
    this.sub?.unsubscribe();
    await this.lab.node(this.o.client).settle();
  }
}
