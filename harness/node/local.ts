// A node that is this machine: child_process, each command in its own process group so a
// timeout can end everything it started.
import { spawn } from 'node:child_process';
import { Observable } from 'rxjs';
import { now } from '../clock.ts';
import { BaseNode } from './base.ts';
import { LineSplitter, OutputBuffer } from './lines.ts';
import {
  CommandFailedError,
  CommandTimeoutError,
  DEFAULT_EXEC_TIMEOUT_MS,
  DEFAULT_STREAM_TIMEOUT_MS,
  NodeError,
  type ExecOptions,
  type ExecResult,
  type OutputLine,
  type StreamOptions,
} from './node.ts';

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

export class LocalNode extends BaseNode {
  readonly name: string;
  readonly address = 'local';
  private readonly pending = new Set<Promise<void>>();

  constructor(name = 'localhost') {
    super();
    this.name = name;
  }

  exec(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
    const start = now();
    return new Promise((resolve, reject) => {
      const [cmd, ...args] = argv;
      if (!cmd) return reject(new Error('empty argv'));
      const child = spawn(cmd, args, {
        detached: true,
        stdio: ['pipe', 'pipe', 'pipe'],
        env: opts.env ? { ...process.env, ...opts.env } : process.env,
      });
      const out = new OutputBuffer();
      const err = new OutputBuffer();
      child.stdout.on('data', (c: Buffer) => out.push(c));
      child.stderr.on('data', (c: Buffer) => err.push(c));
      child.stdin.on('error', () => undefined); // the command may exit without reading its input
      if (opts.input !== undefined) child.stdin.end(opts.input);
      else child.stdin.end();
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        if (child.pid) {
          killGroup(child.pid, 'SIGTERM');
          setTimeout(() => child.pid && killGroup(child.pid, 'SIGKILL'), opts.killGraceMs ?? 2000).unref();
        }
      }, timeoutMs);
      child.on('error', (e) => {
        clearTimeout(timer);
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') {
          resolve({ argv, exitCode: 127, signal: null, stdout: '', stderr: `${cmd}: command not found`, durationMs: now() - start });
        } else reject(new NodeError(this.name, `${this.name}: cannot run ${cmd}: ${e.message}`, { cause: e }));
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        const result: ExecResult = { argv, exitCode: code, signal: signal ?? null, stdout: out.text(), stderr: err.text(), durationMs: now() - start };
        if (timedOut) reject(new CommandTimeoutError(this.name, result, timeoutMs));
        else resolve(result);
      });
    });
  }

  stream(argv: readonly string[], opts: StreamOptions = {}): Observable<OutputLine> {
    return new Observable<OutputLine>((sub) => {
      const [cmd, ...args] = argv;
      if (!cmd) {
        sub.error(new Error('empty argv'));
        return;
      }
      const start = now();
      const child = spawn(cmd, args, { detached: true, stdio: [opts.input ? 'pipe' : 'ignore', 'pipe', 'pipe'], env: opts.env ? { ...process.env, ...opts.env } : process.env });
      const stdin = child.stdin;
      stdin?.on('error', () => undefined);
      const inputSub = opts.input && stdin
        ? opts.input.subscribe({ next: (d) => stdin.write(d), complete: () => stdin.end(), error: () => stdin.end() })
        : undefined;
      const split = { stdout: new LineSplitter(), stderr: new LineSplitter() };
      const tail: string[] = [];
      let done = false;
      const emit = (stream: 'stdout' | 'stderr', lines: string[]) => {
        for (const text of lines) {
          if (stream === 'stderr') {
            tail.push(text);
            if (tail.length > 20) tail.shift();
          }
          sub.next({ stream, text, at: now() });
        }
      };
      child.stdout?.on('data', (c: Buffer) => emit('stdout', split.stdout.push(c)));
      child.stderr?.on('data', (c: Buffer) => emit('stderr', split.stderr.push(c)));
      const timeoutMs = opts.timeoutMs ?? DEFAULT_STREAM_TIMEOUT_MS;
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        if (child.pid) killGroup(child.pid, 'SIGTERM');
      }, timeoutMs);
      child.on('error', (e) => {
        clearTimeout(timer);
        done = true;
        sub.error(new NodeError(this.name, `${this.name}: cannot run ${cmd}: ${e.message}`, { cause: e }));
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        inputSub?.unsubscribe();
        done = true;
        emit('stdout', split.stdout.end());
        emit('stderr', split.stderr.end());
        const result: ExecResult = { argv, exitCode: code, signal: signal ?? null, stdout: '', stderr: tail.join('\n'), durationMs: now() - start };
        if (timedOut) sub.error(new CommandTimeoutError(this.name, result, timeoutMs));
        else if (code === 0 || (code !== null && opts.okExitCodes?.includes(code))) sub.complete();
        else sub.error(new CommandFailedError(this.name, result));
      });
      return () => {
        clearTimeout(timer);
        inputSub?.unsubscribe();
        if (!done && child.pid) {
          const pid = child.pid;
          killGroup(pid, 'SIGTERM');
          const p = new Promise<void>((res) => {
            const k = setTimeout(() => {
              killGroup(pid, 'SIGKILL');
              res();
            }, 2000);
            child.once('close', () => {
              clearTimeout(k);
              res();
            });
          });
          this.pending.add(p);
          void p.finally(() => this.pending.delete(p));
        }
      };
    });
  }

  async settle(): Promise<void> {
    await Promise.all([...this.pending]);
  }

  async close(): Promise<void> {
    await this.settle();
  }
}
