// A workload: real traffic of one ULP between lab nodes, with a progress stream and an end-to-end
// verification. Workloads only use the Node interface, so they run unchanged on any lab.
import { firstValueFrom, filter, throwError, timeout as rxTimeout, type Observable } from 'rxjs';
import type { WorkloadEvent } from '../monitor/events.ts';
import { now } from '../clock.ts';
import type { ConnectionRef } from '../timeline/timeline.ts';
import type { Ulp } from '../topology/defaults.ts';

export interface WorkloadResult {
  workload: string;
  ulp: Ulp;
  /** end-to-end data check passed (nothing lost, duplicated or corrupted; verify OK) */
  dataOk: boolean;
  /** what was checked and what was found, in words */
  summary: string;
  /** bytes moved in total (for path checks) */
  bytes: number;
  /** the tool's own figures */
  details: Record<string, unknown>;
  /** errors the tool reported while running */
  errors: string[];
  /** finish() returned at its deadline with the traffic still going: the workload did not end by
   *  itself (told by what ended, never by comparing clocks at the deadline) */
  running: boolean;
}

export interface Workload {
  readonly name: string;
  readonly ulp: Ulp;
  /** progress, state changes, errors, final */
  readonly events$: Observable<WorkloadEvent>;
  /** identifies its RDMA connection(s) for the timeline */
  connection(): ConnectionRef;
  start(): Promise<void>;
  /** Lets the traffic finish (bounded), verifies the data, returns the verdict's evidence. */
  finish(timeoutMs?: number): Promise<WorkloadResult>;
  /** Stops everything and releases what setup created. Idempotent; runs even after a failure. */
  teardown(): Promise<void>;
  /** the latest progress count */
  readonly done: number;
}

/** Resolves when the workload's progress count passes `target` (rejects after timeoutMs). */
export function progressPast(w: Workload, target: number, timeoutMs: number): Promise<WorkloadEvent> {
  if (w.done > target) return Promise.resolve({ source: 'workload', t: now(), node: '', workload: w.name, kind: 'progress', done: w.done });
  return firstValueFrom(
    w.events$.pipe(
      filter((e) => e.kind === 'progress' && (e.done ?? 0) > target),
      rxTimeout({ first: timeoutMs, with: () => throwError(() => new Error(`${w.name}: progress did not pass ${target} within ${timeoutMs} ms (at ${w.done})`)) }),
    ),
  );
}
