// Each node's clock against the controller's, by the round-trip method over an already-open
// channel: the node answers each probe with its realtime clock (bash's $EPOCHREALTIME, no fork).
// For a probe sent at t0 and answered at t1 with node time tn, the offset lies within
// tn - t1 … tn - t0; we keep the tightest sample. node_time = controller_time + offsetMs ± boundMs.
import { ReplaySubject, Subject, firstValueFrom, filter, timeout as rxTimeout, type Subscription } from 'rxjs';
import { now } from '../clock.ts';
import type { Node } from './node.ts';

export interface ClockOffset {
  node: string;
  /** node clock minus controller clock, ms */
  offsetMs: number;
  /** half the round trip of the best sample: the true offset is within ± this */
  boundMs: number;
  samples: number;
  measuredAt: number;
}

const PROBE = 'if [ -n "$BASH_VERSION" ] && [ -n "$EPOCHREALTIME" ]; then while read -r _; do echo "$EPOCHREALTIME"; done; else while read -r _; do date +%s.%N; done; fi';

/**
 * A clock probe kept open on a node: each measurement is a few round trips on a stream already
 * running (starting one costs a channel and a shell, ~0.3 s on an emulated guest). Measurements
 * queue; a probe whose stream ended fails them, and the caller starts another.
 */
export class ClockProbe {
  readonly node: Node;
  private readonly input = new ReplaySubject<string>();
  private readonly lines = new Subject<{ text: string; at: number }>();
  private readonly sub: Subscription;
  private queue: Promise<unknown> = Promise.resolve();
  private warm = false;
  ended: string | undefined;

  constructor(node: Node, opts: { owner?: string; timeoutMs?: number } = {}) {
    this.node = node;
    // Replay: probes sent before the channel is open must not be lost.
    this.sub = node
      .stream(['sh', '-c', 'if command -v bash >/dev/null; then exec bash -c "$1"; else exec sh -c "$1"; fi', 'clock-probe', PROBE], {
        input: this.input,
        timeoutMs: opts.timeoutMs ?? 30_000,
        ...(opts.owner ? { owner: opts.owner } : {}),
      })
      .subscribe({
        next: (l) => l.stream === 'stdout' && this.lines.next(l),
        error: (e: Error) => {
          this.ended = e.message;
          this.lines.error(e);
        },
        complete: () => {
          this.ended = 'the clock probe ended';
          this.lines.error(new Error(this.ended));
        },
      });
  }

  measure(samples = 9): Promise<ClockOffset> {
    const p = this.queue.then(() => this.sample(samples));
    this.queue = p.catch(() => undefined);
    return p;
  }

  private async sample(samples: number): Promise<ClockOffset> {
    if (this.ended) throw new Error(`${this.node.name}: clock probe: ${this.ended}`);
    let best: { offset: number; bound: number } | undefined;
    // The first answer of a new probe includes starting it: not a sample.
    const first = this.warm ? 0 : 1;
    for (let i = 0; i < samples + first; i++) {
      const reply = firstValueFrom(this.lines.pipe(filter((l) => /^\d+[.,]\d+$/.test(l.text)), rxTimeout(10_000)));
      const t0 = now();
      this.input.next('\n');
      let l: { text: string; at: number };
      try {
        l = await reply;
      } catch (e) {
        // A late answer would be taken for the next probe's: this probe is done.
        this.ended ??= `unanswered: ${(e as Error).message}`;
        this.close();
        throw e;
      }
      if (i < first) continue;
      const t1 = l.at;
      const tn = Number(l.text.replace(',', '.')) * 1000;
      const bound = (t1 - t0) / 2;
      const offset = tn - (t0 + t1) / 2;
      if (!best || bound < best.bound) best = { offset, bound };
    }
    this.warm = true;
    if (!best) throw new Error('no clock samples');
    return { node: this.node.name, offsetMs: best.offset, boundMs: best.bound, samples, measuredAt: now() };
  }

  close(): void {
    this.ended ??= 'closed';
    this.input.complete();
    this.sub.unsubscribe();
  }
}

export async function measureClockOffset(node: Node, samples = 9): Promise<ClockOffset> {
  const probe = new ClockProbe(node);
  try {
    return await probe.measure(samples);
  } finally {
    probe.close();
  }
}
