// Did a fault fall inside the operation it was aimed at? RF-04 aims at a connect, RF-05 at a
// teardown; a fault that missed proves nothing about either, so the test retries and never
// passes on a miss. Times are the controller's ms (the monitors' events are mapped onto it).

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
