// Bounds concurrent SSH channels. The server's MaxSessions is not advertised, so the limit adapts:
// when the server refuses a channel, the limit drops to what was open at that moment.
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

  /** The server refused a channel while `openAtRefusal` were open: that is its real limit. */
  shrinkTo(openAtRefusal: number): void {
    this.limit = Math.max(2, openAtRefusal);
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
