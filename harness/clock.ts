// The harness's time axis: epoch milliseconds with sub-millisecond resolution.
// Date.now() has 1 ms steps; performance.now() is monotonic and finer.
import { AsyncLocalStorage } from 'node:async_hooks';
import { NodeDownError } from './node/node.ts';

export function now(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * Resolves no earlier than `ms` after the call on now()'s axis. Node's timers count from the event
 * loop's cached time, which lags when the loop was busy: a bare setTimeout fired up to 1.2 ms early
 * here (118 of 200 sleeps), so "slept until the deadline, then now() < deadline" was sometimes true
 * (RF-03 long's "gave up within the outage" judged so, CI at 8d4b7e8). The rest is slept again.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  const until = now() + ms;
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    let t: NodeJS.Timeout;
    const arm = (left: number) => {
      t = setTimeout(() => {
        const rest = until - now();
        if (rest > 0) return arm(rest);
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, left);
    };
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason as Error);
    };
    arm(ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Poll `probe` until it returns a value other than undefined, or throw after timeoutMs. The probe
 * gets the time left: a probe that runs a command bounds it by that (`within(left, 60_000)`), so the
 * wait ends near its bound — a 60 s attempt started at 89 s of a 90 s wait made it ~190 s, and the
 * test's own deadline then fired first, with another message (a verdict that depended on timing).
 */
export async function waitFor<T>(
  what: string,
  probe: (leftMs: number) => Promise<T | undefined> | T | undefined,
  opts: { timeoutMs: number; intervalMs?: number },
): Promise<T> {
  const deadline = now() + opts.timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await probe(Math.max(0, deadline - now()));
      if (v !== undefined) return v;
    } catch (e) {
      // A node known to be down (its kernel crashed) will not answer a later probe either.
      if (e instanceof NodeDownError) throw e;
      lastError = e;
    }
    if (now() >= deadline) {
      const why = lastError instanceof Error ? `; last error: ${lastError.message}` : '';
      throw new WaitTimeoutError(`timed out after ${opts.timeoutMs} ms waiting for ${what}${why}`);
    }
    await sleep(opts.intervalMs ?? 200);
  }
}

/** A command's timeout inside a waitFor probe: at most `cap`, at most what is left, at least `floor`. */
export function within(leftMs: number, cap: number, floor = 5000): number {
  return Math.round(Math.max(floor, Math.min(cap, leftMs)));
}

export class WaitTimeoutError extends Error {
  override name = 'WaitTimeoutError';
}

/** A timed part of the harness's own work (the report's harness steps). */
export interface Span {
  name: string;
  startedAt: number;
  durationMs: number;
}

const spanSink = new AsyncLocalStorage<Span[]>();

/** Runs fn with the spans timed inside it (span(), at any depth) recorded into `into`. */
export function recordSpans<T>(into: Span[], fn: () => Promise<T>): Promise<T> {
  return spanSink.run(into, fn);
}

/**
 * Times fn as a part of the harness work being recorded, if any (e.g. each undo inside a
 * workload's teardown): where the harness's own time goes, per command, in every report.
 */
export async function span<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const into = spanSink.getStore();
  if (!into) return fn();
  const startedAt = now();
  try {
    return await fn();
  } finally {
    into.push({ name, startedAt, durationMs: now() - startedAt });
  }
}
