// Each node's clock against the controller's, by the round-trip method over an already-open
// channel: the node answers each probe with its realtime clock (bash's $EPOCHREALTIME, no fork).
// For a probe sent at t0 and answered at t1 with node time tn, the offset lies within
// tn - t1 … tn - t0; we keep the tightest sample. node_time = controller_time + offsetMs ± boundMs.
import { ReplaySubject, Subject, firstValueFrom, filter, timeout as rxTimeout } from 'rxjs';
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

export async function measureClockOffset(node: Node, samples = 9): Promise<ClockOffset> {
  // Replay: probes sent before the channel is open must not be lost.
  const input = new ReplaySubject<string>();
  const lines = new Subject<{ text: string; at: number }>();
  const sub = node
    .stream(['sh', '-c', 'if command -v bash >/dev/null; then exec bash -c "$1"; else exec sh -c "$1"; fi', 'clock-probe', PROBE], { input, timeoutMs: 30_000 })
    .subscribe({ next: (l) => l.stream === 'stdout' && lines.next(l), error: (e: unknown) => lines.error(e) });
  try {
    let best: { offset: number; bound: number } | undefined;
    for (let i = 0; i < samples + 1; i++) {
      const reply = firstValueFrom(lines.pipe(filter((l) => /^\d+[.,]\d+$/.test(l.text)), rxTimeout(10_000)));
      const t0 = now();
      input.next('\n');
      const l = await reply;
      const t1 = l.at;
      const tn = Number(l.text.replace(',', '.')) * 1000;
      if (i === 0) continue; // the first answer includes starting the probe
      const bound = (t1 - t0) / 2;
      const offset = tn - (t0 + t1) / 2;
      if (!best || bound < best.bound) best = { offset, bound };
    }
    if (!best) throw new Error('no clock samples');
    return { node: node.name, offsetMs: best.offset, boundMs: best.bound, samples, measuredAt: now() };
  } finally {
    input.complete();
    sub.unsubscribe();
  }
}
