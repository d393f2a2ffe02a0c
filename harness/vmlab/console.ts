// A guest's serial console log, read as it grows: the guest says there when it is ready.
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';

/** What stage 2 writes to the kernel log (and so the serial console) once the guest is ready. */
export const READY_MARK = 'rf-guest: stage 2 done';

/**
 * Watches a console log as it grows, from a byte offset, for a text. Only what was written since
 * the offset counts (a reset guest appends its new boot to the same log); a text split between two
 * reads is still found.
 */
export class ConsoleWatch {
  private readonly file: string;
  private readonly text: string;
  private pos: number;
  private tail = '';
  private found = false;
  constructor(file: string, from: number, text: string) {
    this.file = file;
    this.pos = from;
    this.text = text;
  }

  /** Has the text appeared since the offset? Reads only what is new since the last call. */
  seen(): boolean {
    if (this.found || !existsSync(this.file)) return this.found;
    const size = statSync(this.file).size;
    if (size < this.pos) this.pos = 0; // truncated: a new log
    if (size === this.pos) return false;
    const fd = openSync(this.file, 'r');
    try {
      const buf = Buffer.alloc(Math.min(size - this.pos, 1 << 20));
      const n = readSync(fd, buf, 0, buf.length, this.pos);
      this.pos += n;
      const chunk = this.tail + buf.subarray(0, n).toString('latin1');
      this.found = chunk.includes(this.text);
      this.tail = chunk.slice(-this.text.length);
      return this.found;
    } finally {
      closeSync(fd);
    }
  }
}
