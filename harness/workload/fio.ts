// fio with end-to-end verification on a node: each pass writes every block with a pattern of its own
// (the pass's stamp and the block's offset) and reads every block back, JSON status every second for
// the progress stream, JSON result parsed at the end. Used by the storage workloads.
import { Subject, type Observable, type Subscription } from 'rxjs';
import type { Node } from '../node/node.ts';
import type { WorkloadEvent } from '../monitor/events.ts';
import { now } from '../clock.ts';

export interface FioOptions {
  /** a block device or a file */
  filename: string;
  sizeMiB: number;
  /** how many times the area is written (and verified) */
  loops?: number;
  bs?: string;
  iodepth?: number;
  direct?: boolean;
  /** MiB/s cap on reads and writes (tests that act between a block's write and its check) */
  rateMiBs?: number;
  /**
   * This pass's stamp (non-zero, 32 bits), written into every block beside the block's offset. Each
   * pass needs its own: the data of a pass is otherwise the same as the last one's, and a block whose
   * write was lost would still hold the last pass's copy — which verifies.
   */
  stamp: number;
  /** only read the area back and check it against `stamp` (no writes) */
  verifyOnly?: boolean;
  /** run fio under this command (e.g. prlimit), its argv before fio's */
  argvPrefix?: string[];
}

interface FioJob {
  jobname: string;
  error: number;
  read: { io_bytes: number; short_ios?: number };
  write: { io_bytes: number; short_ios?: number };
  verify_errors?: number;
}

interface FioJson {
  time?: string;
  timestamp_ms?: number;
  jobs: FioJob[];
}

export interface FioResult {
  ok: boolean;
  exitCode: number | null;
  error: number;
  writtenBytes: number;
  readBytes: number;
  /** writes the kernel completed only in part (fio's short_ios): an error inside the request */
  shortWrites: number;
  verifyErrors: string[];
  summary: string;
}

/**
 * A short write is an I/O error the application sees: the kernel wrote part of the request and
 * failed the rest (for NFS O_DIRECT, one of the request's RPCs ended with an error: 6.1
 * fs/nfs/direct.c nfs_direct_count_bytes caps the count there). fio retries the rest, but its
 * check of that block is then no evidence either way: io_completed (io_u.c) requeues the rest at
 * offset + done, and do_io (backend.c) stamps the buffer again for the new offset (verify_pattern's
 * %o) and logs a whole block there, while the write sends the buffer from `done` on — so the block
 * fails to verify though nothing was lost, and the overlapping log entry drops the next block's
 * check (fio 3.33, unchanged in 3.42). The pass fails, named for the short write.
 */
export const SHORT_WRITE = 'came back short';

/**
 * fio's stderr lines that say nothing about the I/O: its own statistics. "error calculating latency
 * percentiles" comes from stat.c (calc_clat_percentiles) when a status report's histogram does not
 * reach a percentile — seen once right after an outage's stalled I/O (M4, RF-09 iSER), where taking
 * it for an I/O error hid the I/O that resumed. Any other line that says "error" is an I/O error.
 */
const STATS_ONLY = [/^fio: error calculating latency percentiles$/];

/** Does this fio stderr line mean the I/O failed (not only fio's statistics)? */
export function meansIoFailed(line: string): boolean {
  const l = line.trim();
  return /error/i.test(l) && !STATS_ONLY.some((re) => re.test(l));
}

/** Splits fio's stream of pretty-printed JSON objects (one per --status-interval) into objects. */
export class JsonObjects {
  private depth = 0;
  private buf: string[] = [];
  push(line: string): FioJson | undefined {
    if (this.depth === 0 && !line.startsWith('{')) return undefined;
    this.buf.push(line);
    for (const ch of line) {
      if (ch === '{') this.depth++;
      else if (ch === '}') this.depth--;
    }
    if (this.depth > 0) return undefined;
    const text = this.buf.join('\n');
    this.buf = [];
    this.depth = 0;
    try {
      return JSON.parse(text) as FioJson;
    } catch {
      return undefined;
    }
  }
}

/** fio's verify_pattern for a stamp: the stamp (4 bytes), then the block's offset (%o). */
export function stampPattern(stamp: number): string {
  if (!Number.isInteger(stamp) || stamp <= 0 || stamp > 0xffffffff) throw new Error(`a fio stamp is a non-zero 32-bit integer, not ${stamp}`);
  return `0x${stamp.toString(16).padStart(8, '0')}%o`;
}

/** The next pass's stamp: random, never zero (an all-zero block at offset 0 must not verify),
 *  never the previous pass's. */
export function nextStamp(previous = 0): number {
  for (;;) {
    const s = (Math.floor(Math.random() * 0x7fffffff) | 0x40000000) >>> 0;
    if (s !== previous) return s;
  }
}

export function fioArgv(o: FioOptions): string[] {
  return [
    'fio',
    '--name=rf-verify',
    `--filename=${o.filename}`,
    `--size=${o.sizeMiB}M`,
    '--rw=write',
    `--bs=${o.bs ?? '64k'}`,
    '--ioengine=libaio',
    `--iodepth=${o.iodepth ?? 8}`,
    `--direct=${o.direct === false ? 0 : 1}`,
    `--loops=${o.loops ?? 3}`,
    ...(o.rateMiBs ? [`--rate=${o.rateMiBs}m`] : []),
    // After each write pass, every byte of every block is read back and compared with what the pass
    // wrote: its stamp and the block's offset, repeated. A block lost, stale (a previous pass's),
    // misplaced or changed behind the ULP's back between its write and its check fails. Not
    // --verify=crc32c: fio's seeds repeat from run to run, so every pass wrote the same blocks (the
    // headers differ only in a timestamp verification does not check) and a block left from an
    // earlier pass verified. (No verify_backlog: it checks each block once, early, and never again.)
    '--verify=pattern',
    `--verify_pattern=${stampPattern(o.stamp)}`,
    ...(o.verifyOnly ? ['--verify_only'] : ['--do_verify=1']),
    '--verify_fatal=0',
    '--verify_dump=0',
    // no *-verify.state file in the remote working directory (root's home on a real lab)
    '--verify_state_save=0',
    '--exitall_on_error=0',
    '--status-interval=1',
    '--output-format=json',
  ];
}

/** Runs fio; `events$` carries progress (bytes done), `result` resolves when fio ends. */
export function runFio(node: Node, workload: string, o: FioOptions, timeoutMs: number): { events$: Observable<WorkloadEvent>; result: Promise<FioResult>; stop: () => void } {
  const events = new Subject<WorkloadEvent>();
  const parser = new JsonObjects();
  let last: FioJson | undefined;
  const stderr: string[] = [];
  let sub: Subscription | undefined;
  const result = new Promise<FioResult>((resolve) => {
    const finish = (exitCode: number | null, why?: string) => {
      const jobs = last?.jobs ?? [];
      const written = jobs.reduce((s, j) => s + (j.write?.io_bytes ?? 0), 0);
      const read = jobs.reduce((s, j) => s + (j.read?.io_bytes ?? 0), 0);
      const error = jobs.reduce((s, j) => s + (j.error ?? 0), 0);
      const shortWrites = jobs.reduce((s, j) => s + (j.write?.short_ios ?? 0), 0);
      const verifyErrors = stderr.filter((l) => /verify|bad magic|crc32c|header|offset/i.test(l)).slice(0, 20);
      const ok = exitCode === 0 && error === 0 && shortWrites === 0 && verifyErrors.length === 0 && (written > 0 || !!o.verifyOnly) && read > 0;
      const short = shortWrites
        ? `${shortWrites} write(s) ${SHORT_WRITE}: the kernel completed part of a write and failed the rest, an I/O error the application sees (fio's check of such a block is no evidence: it re-stamps the rest for a shifted offset); `
        : '';
      events.next({ source: 'workload', t: now(), node: node.name, workload, kind: 'final', done: written + read, data: { error, written, read } });
      events.complete();
      resolve({
        ok,
        exitCode,
        error,
        writtenBytes: written,
        readBytes: read,
        shortWrites,
        verifyErrors,
        summary: `${short}fio on ${o.filename}: ${(written / 2 ** 20).toFixed(1)} MiB written, ${(read / 2 ** 20).toFixed(1)} MiB verified, error ${error}, ${verifyErrors.length ? `${verifyErrors.length} verify error line(s)` : 'no verify errors'}${why ? `; ${why}` : ''}`,
      });
    };
    sub = node.stream([...(o.argvPrefix ?? []), ...fioArgv(o)], { timeoutMs }).subscribe({
      next: (l) => {
        if (l.stream === 'stderr') {
          stderr.push(l.text);
          events.next({ source: 'workload', t: l.at, node: node.name, workload, kind: 'error', data: { text: l.text } });
          return;
        }
        const j = parser.push(l.text);
        if (!j) return;
        last = j;
        const done = j.jobs.reduce((s, x) => s + (x.write?.io_bytes ?? 0) + (x.read?.io_bytes ?? 0), 0);
        events.next({ source: 'workload', t: l.at, node: node.name, workload, kind: 'progress', done });
      },
      error: (e: Error & { result?: { exitCode: number | null } }) => finish(e.result?.exitCode ?? null, e.message.split('\n')[0]),
      complete: () => finish(0),
    });
  });
  return { events$: events.asObservable(), result, stop: () => sub?.unsubscribe() };
}
