// What every Node implementation shares: run/readFile/writeFile are built on exec.
import type { Observable } from 'rxjs';
import {
  bigWriteArgv,
  CommandFailedError,
  FileWriteError,
  smallWriteArgv,
  SMALL_WRITE_BYTES,
  type ExecOptions,
  type ExecResult,
  type Node,
  type OutputLine,
  type ProcessHooks,
  type StreamOptions,
} from './node.ts';

export abstract class BaseNode implements Node {
  abstract readonly name: string;
  abstract readonly address: string;
  abstract exec(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  abstract stream(argv: readonly string[], opts?: StreamOptions): Observable<OutputLine>;
  abstract settle(): Promise<void>;
  abstract close(): Promise<void>;
  processHooks?: ProcessHooks;

  async run(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult> {
    const r = await this.exec(argv, opts);
    if (r.exitCode !== 0) throw new CommandFailedError(this.name, r);
    return r;
  }

  async readFile(path: string, opts: { timeoutMs?: number } = {}): Promise<string> {
    const r = await this.run(['cat', '--', path], { timeoutMs: opts.timeoutMs ?? 15_000 });
    return r.stdout;
  }

  async writeFile(path: string, data: string | Buffer, opts: { timeoutMs?: number } = {}): Promise<void> {
    const timeoutMs = opts.timeoutMs ?? 15_000;
    const small = typeof data === 'string' && Buffer.byteLength(data) <= SMALL_WRITE_BYTES && !data.includes('\0');
    const r = small
      ? await this.exec(smallWriteArgv(path, data), { timeoutMs })
      : await this.exec(bigWriteArgv(path), { timeoutMs, input: data });
    if (r.exitCode !== 0) throw new FileWriteError(this.name, path, r.stderr);
  }
}
