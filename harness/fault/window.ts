// Did a fault fall inside the operation it was aimed at? RF-04 aims at a connect, RF-05 at a
// teardown; a fault that missed proves nothing about either, so the test retries and never
// passes on a miss. Times are the controller's ms (the monitors' events are mapped onto it).
import type { CmaEvent, LabEvent } from '../monitor/events.ts';

/** RF-04: the fault landed after the client's connection started resolving, and before the
 *  set-up ended — or the set-up failed after it (the failure is what the fault caused). */
export function faultInConnect(w: { connectStartedAt: number; landedAt: number; setupEndedAt: number; setupFailed: boolean }): boolean {
  if (w.landedAt < w.connectStartedAt) return false;
  return w.setupFailed ? w.setupEndedAt >= w.landedAt : w.landedAt <= w.setupEndedAt;
}

/** RF-05: the teardown had started when the fault landed, and the client's connection went away
 *  after it (no trace of it going away: unknown, so a miss). */
export function faultInTeardown(w: { teardownStartedAt: number; landedAt: number; connectionGoneAt: number | undefined }): boolean {
  return w.teardownStartedAt <= w.landedAt && w.connectionGoneAt !== undefined && w.connectionGoneAt >= w.landedAt;
}

/** RF-04 with the server's replies held: the first reply the client heard from the server before
 *  the fault landed (none when the hold held). A reply means the fault missed the handshake. */
export function heardBeforeFault(events: readonly LabEvent[], w: { client: string; serverIp: string; from: number; landedAt: number }): CmaEvent | undefined {
  return events.find(
    (e): e is CmaEvent =>
      e.source === 'cma' && e.node === w.client && e.t >= w.from && e.t < w.landedAt && e.point === 'cm_event_handler' && ['CONNECT_RESPONSE', 'ESTABLISHED', 'REJECTED'].includes(e.event ?? '') && (e.dst ?? '').startsWith(`${w.serverIp}:`),
  );
}
