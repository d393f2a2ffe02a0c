// rping (rdma-core's example) as a workload: a continuous ping-pong over one RDMA CM connection.
// It is the reference for a ULP that does NOT reconnect: it ignores RDMA_CM_EVENT_ADDR_CHANGE
// ("unhandled event … ignoring") and its connection is lost.
import { Subject, type Subscription } from 'rxjs';
import { now, sleep } from '../clock.ts';
import type { Lab } from '../lab/lab.ts';
import type { WorkloadEvent } from '../monitor/events.ts';
import { ipOf } from '../net/ip.ts';
import type { ConnectionRef } from '../timeline/timeline.ts';
import type { Workload, WorkloadResult } from './workload.ts';

export interface RpingOptions {
  client: string;
  server: string;
  port?: number;
  size?: number;
}

export class RpingWorkload implements Workload {
  readonly name = 'rping';
  readonly ulp = 'rping' as const;
  private readonly lab: Lab;
  private readonly opts: Required<RpingOptions>;
  private readonly subject = new Subject<WorkloadEvent>();
  readonly events$ = this.subject.asObservable();
  private readonly subs: Subscription[] = [];
  private readonly errors: string[] = [];
  private clientEnded: Promise<number | null> | undefined;
  private lastEmit = 0;
  private torn = false;
  done = 0;

  constructor(lab: Lab, opts: RpingOptions) {
    this.lab = lab;
    this.opts = { port: 7174, size: 64, ...opts };
  }

  private ip(node: string): string {
    const b = this.lab.spec(node).bonds?.[0];
    if (!b) throw new Error(`${node} has no bond`);
    return ipOf(b.address);
  }

  connection(): ConnectionRef {
    return {
      ulp: 'rping',
      label: `${this.opts.client} → ${this.opts.server} (rping, ${this.opts.size} B)`,
      nodes: [this.opts.client, this.opts.server],
      ips: [this.ip(this.opts.client), this.ip(this.opts.server)],
      ports: [this.opts.port],
      workload: this.name,
      comms: ['rping'],
    };
  }

  private emit(node: string, kind: WorkloadEvent['kind'], extra: Partial<WorkloadEvent> = {}): void {
    this.subject.next({ source: 'workload', t: now(), node, workload: this.name, kind, ...extra });
  }

  /** Starts the server, then the client; resolves when the first pings came back. */
  async start(): Promise<void> {
    const { client, server, port, size } = this.opts;
    const srv = this.lab.node(server);
    this.subs.push(
      srv.stream(['rping', '-s', '-a', this.ip(server), '-p', String(port), '-v'], { timeoutMs: 30 * 60_000 }).subscribe({
        next: (l) => l.stream === 'stderr' && this.errors.push(`${server}: ${l.text}`),
        error: (e: Error) => this.errors.push(`${server}: ${e.message}`),
      }),
    );
    const cli = this.lab.node(client);
    for (let i = 0; i < 30 && this.done === 0; i++) {
      await sleep(300);
      this.clientEnded = new Promise((resolve) => {
        this.subs.push(
          cli.stream(['rping', '-c', '-a', this.ip(server), '-p', String(port), '-v', '-d', '-S', String(size)], { timeoutMs: 30 * 60_000 }).subscribe({
            next: (l) => {
              if (l.stream === 'stderr') {
                this.errors.push(`${client}: ${l.text}`);
                this.emit(client, 'error', { data: { text: l.text } });
                return;
              }
              if (l.text.startsWith('ping data:')) {
                this.done++;
                // rping prints hundreds of lines a second: one progress event per 50 ms is enough.
                if (l.at - this.lastEmit >= 50) {
                  this.lastEmit = l.at;
                  this.subject.next({ source: 'workload', t: l.at, node: client, workload: this.name, kind: 'progress', done: this.done });
                }
              } else if (/cma_event type (\S+)/.test(l.text)) {
                this.emit(client, 'state', { state: /cma_event type (\S+)/.exec(l.text)![1]! });
              }
            },
            error: (e: Error & { result?: { exitCode: number | null } }) => {
              this.errors.push(`${client}: ${e.message}`);
              resolve(e.result?.exitCode ?? null);
            },
            complete: () => resolve(0),
          }),
        );
      });
      // Wait for the first ping, or for the client to die (server not listening yet: retry).
      const deadline = now() + 20_000;
      let ended = false;
      void this.clientEnded.then(() => (ended = true));
      while (this.done === 0 && !ended && now() < deadline) await sleep(100);
      if (this.done > 0) break;
    }
    if (this.done === 0) throw new Error(`rping did not connect: ${this.errors.slice(-5).join('; ')}`);
  }

  async finish(): Promise<WorkloadResult> {
    const exit = await Promise.race([this.clientEnded ?? Promise.resolve(null), sleep(1000).then(() => 'running' as const)]);
    return {
      workload: this.name,
      ulp: 'rping',
      // rping verifies each ping's payload itself (-v prints it; a mismatch ends it with an error).
      dataOk: !this.errors.some((e) => /data mismatch|verify/i.test(e)),
      summary: `${this.done} pings; client ${exit === 'running' ? 'still running' : `exited (${String(exit)})`}`,
      bytes: this.done * this.opts.size * 2,
      details: { pings: this.done, clientExit: exit },
      errors: [...this.errors],
      running: exit === 'running',
    };
  }

  async teardown(): Promise<void> {
    if (this.torn) return;
    this.torn = true;
    for (const s of this.subs) s.unsubscribe();
    this.subject.complete();
    await Promise.all([this.opts.client, this.opts.server].map((n) => this.lab.node(n).settle()));
  }
}

/** One short rping client run against a server that is already listening (true when all pings came back). */
export async function rpingClient(lab: Lab, client: string, serverIp: string, port: number, count = 5, withinMs = 200_000): Promise<{ ok: boolean; output: string }> {
  let out = '';
  const end = now() + withinMs;
  for (let i = 0; i < 10 && now() < end; i++) {
    const left = Math.max(2, Math.min(20, Math.ceil((end - now()) / 1000)));
    const r = await lab.node(client).exec(['timeout', String(left), 'rping', '-c', '-a', serverIp, '-p', String(port), '-C', String(count), '-v'], { timeoutMs: left * 1000 + 10_000 });
    out = `${r.stdout}${r.stderr}`;
    if ((r.stdout.match(/^ping data: rdma-ping-\d+/gm) ?? []).length >= count) return { ok: true, output: out };
    await sleep(500);
  }
  return { ok: false, output: out };
}
