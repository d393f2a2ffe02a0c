// The harness's time axis: epoch milliseconds with sub-millisecond resolution.
// Date.now() has 1 ms steps; performance.now() is monotonic and finer.
export function now(): number {
  return performance.timeOrigin + performance.now();
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason as Error);
    };
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
