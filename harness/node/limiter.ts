// Bounds concurrent SSH channels. The server's MaxSessions is not advertised, so the limit adapts:
// when the server refuses a channel for certain (see CloseLedger), the limit drops to what was open.
// One slot is kept for control operations (kill on timeout) so they never wait behind the work they stop.

export class ChannelLimiter {
  private inFlight = 0;
  private limit: number;
  private readonly queue: { control: boolean; resolve: () => void }[] = [];

  constructor(limit: number) {
    this.limit = Math.max(2, limit);
  }

  get current(): { inFlight: number; limit: number; queued: number } {
    return { inFlight: this.inFlight, limit: this.limit, queued: this.queue.length };
  }

  private capacity(control: boolean): number {
    return control ? this.limit : this.limit - 1;
  }

  acquire(control = false): Promise<() => void> {
    return new Promise((resolve) => {
      const grant = () => {
        this.inFlight++;
        let released = false;
        resolve(() => {
          if (released) return;
          released = true;
          this.inFlight--;
          this.pump();
        });
      };
      if (this.inFlight < this.capacity(control) && this.queue.length === 0) grant();
      else this.queue.push({ control, resolve: grant });
    });
  }

  /** The server refused a channel while `openAtRefusal` others were open: its real limit is no higher. */
  shrinkTo(openAtRefusal: number): void {
    this.limit = Math.max(2, Math.min(this.limit, openAtRefusal));
  }

  private pump(): void {
    while (this.queue.length) {
      const idx = this.queue.findIndex((q) => this.inFlight < this.capacity(q.control));
      if (idx < 0) return;
      const [next] = this.queue.splice(idx, 1);
      next?.resolve();
    }
  }
}

/**
 * Channels open and closed on one connection, and how many of those the server has surely freed (a round trip
 * sent after their CHANNEL_CLOSE was answered). A refusal while some are unconfirmed may be transient.
 */
export class CloseLedger {
  /** channels whose open was sent and that are neither closed nor refused yet */
  live = 0;
  closed = 0;
  private confirmedUpTo = 0;

  get unconfirmed(): number {
    return this.closed - this.confirmedUpTo;
  }

  /** A round trip sent when `closedAtSend` channels had been closed was answered. */
  confirm(closedAtSend: number): void {
    this.confirmedUpTo = Math.max(this.confirmedUpTo, closedAtSend);
  }
}
