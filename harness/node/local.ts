// A node that is this machine: child_process, each command in its own process group so a
// timeout can end everything it started.
//
// Every wait is bounded: a command is done when it exits, even if something it left behind (a
// daemon a carrier command started) keeps its stdout open — 'close' would never come; a stop is
// SIGTERM, then SIGKILL after the grace period; a process the kernel cannot kill (D state) is given
// up on after that, so no caller ever hangs on a local command.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Observable } from 'rxjs';
import { now } from '../clock.ts';
import { BaseNode } from './base.ts';
import { admit, refusal, refusedStream } from './gate.ts';
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

/** How long output may keep flowing after the command exited (its pipes drain), before we stop reading. */
const DRAIN_AFTER_EXIT_MS = 1000;
/** After SIGKILL, how long to wait for the exit before giving up on the process. */
const AFTER_KILL_MS = 2000;

/** Field 22 of /proc/PID/stat (after the comm, which may hold spaces). */
function startTimeOf(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '0';
  } catch {
    return '0';
  }
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/**
 * Follows one child: calls `done` exactly once — after 'close', or DRAIN_AFTER_EXIT_MS after
 * 'exit' when the pipes stay open, or when a stop could not end it. `stop()` sends SIGTERM to the
 * group, SIGKILL after the grace period, and gives up AFTER_KILL_MS later.
 */
class Tracked {
  exitCode: number | null = null;
  signal: string | null = null;
  exited = false;
  /** why the pipes were not read to their end, if they were not */
  note: string | undefined;
  private finished = false;
  private readonly timers: NodeJS.Timeout[] = [];
  readonly child: ChildProcess;
  private readonly done: () => void;

  constructor(child: ChildProcess, done: () => void) {
    this.child = child;
    this.done = done;
    child.on('exit', (code, signal) => {
      this.exited = true;
      this.exitCode = code;
      this.signal = signal ?? null;
      this.later(DRAIN_AFTER_EXIT_MS, () => {
        this.note = `stopped reading ${DRAIN_AFTER_EXIT_MS} ms after the command exited: a process it left behind holds its output open`;
        child.stdout?.destroy();
        child.stderr?.destroy();
        this.finish();
      });
    });
    child.on('close', (code, signal) => {
      if (!this.exited) {
        this.exitCode = code;
        this.signal = signal ?? null;
      }
      this.finish();
    });
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(fn, ms);
    t.unref();
    this.timers.push(t);
  }

  finish(): void {
    if (this.finished) return;
    this.finished = true;
    for (const t of this.timers) clearTimeout(t);
    this.done();
  }

  get isFinished(): boolean {
    return this.finished;
  }

  /** TERM the group, KILL it after graceMs, give up AFTER_KILL_MS later. */
  stop(graceMs: number): void {
    const pid = this.child.pid;
    if (!pid || this.finished) return;
    killGroup(pid, 'SIGTERM');
    this.later(graceMs, () => {
      killGroup(pid, 'SIGKILL');
      this.later(AFTER_KILL_MS, () => {
        this.note = `process group ${pid} did not end ${AFTER_KILL_MS} ms after SIGKILL (stuck in the kernel?): given up on`;
        this.child.stdout?.destroy();
        this.child.stderr?.destroy();
        this.finish();
      });
    });
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
    const [cmd, ...args] = argv;
    if (!cmd) return Promise.reject(new Error('empty argv'));
    let stopInFlight: ((why: string) => Promise<void>) | undefined;
    const gate = admit(this.name, argv, (why) => stopInFlight?.(why) ?? Promise.resolve());
    if ('refused' in gate) return Promise.reject(gate.refused);
    return new Promise((resolve, reject) => {
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
      let stoppedWhy: string | undefined;
      let spawnError = false;
      let ended: () => void = () => undefined;
      const endedP = new Promise<void>((res) => (ended = res));
      const tracked = new Tracked(child, () => {
        clearTimeout(timer);
        gate.release();
        ended();
        if (spawnError) return;
        const note = tracked.note ? `${err.text() ? '\n' : ''}[rdma-failover: ${tracked.note}]` : '';
        const result: ExecResult = { argv, exitCode: tracked.exitCode, signal: tracked.signal, stdout: out.text(), stderr: err.text() + note, durationMs: now() - start };
        if (stoppedWhy) reject(refusal(this.name, argv, stoppedWhy, true));
        else if (timedOut) reject(new CommandTimeoutError(this.name, result, timeoutMs));
        else resolve(result);
      });
      const timer = setTimeout(() => {
        timedOut = true;
        tracked.stop(opts.killGraceMs ?? 2000);
      }, timeoutMs);
      // the test that started it has stopped (see gate.ts): stopped as at its timeout
      stopInFlight = (why) => {
        if (!timedOut) {
          stoppedWhy = why;
          clearTimeout(timer);
          tracked.stop(opts.killGraceMs ?? 2000);
        }
        return endedP;
      };
      child.on('error', (e) => {
        clearTimeout(timer);
        spawnError = true;
        tracked.finish();
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') {
          resolve({ argv, exitCode: 127, signal: null, stdout: '', stderr: `${cmd}: command not found`, durationMs: now() - start });
        } else reject(new NodeError(this.name, `${this.name}: cannot run ${cmd}: ${e.message}`, { cause: e }));
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
      const refused = refusedStream(this.name, argv);
      if (refused) return sub.error(refused);
      const start = now();
      const child = spawn(cmd, args, { detached: true, stdio: [opts.input ? 'pipe' : 'ignore', 'pipe', 'pipe'], env: opts.env ? { ...process.env, ...opts.env } : process.env });
      const proc = child.pid ? { pid: child.pid, pgid: child.pid, startTime: startTimeOf(child.pid) } : undefined;
      if (proc) this.processHooks?.started(this.name, proc, argv, opts.owner);
      child.once('exit', () => proc && this.processHooks?.ended(this.name, proc));
      const stdin = child.stdin;
      stdin?.on('error', () => undefined);
      const inputSub = opts.input && stdin
        ? opts.input.subscribe({ next: (d) => stdin.write(d), complete: () => stdin.end(), error: () => stdin.end() })
        : undefined;
      const split = { stdout: new LineSplitter(), stderr: new LineSplitter() };
      const tail: string[] = [];
      let unsubscribed = false;
      const emit = (stream: 'stdout' | 'stderr', lines: string[]) => {
        for (const text of lines) {
          if (stream === 'stderr') {
            tail.push(text);
            if (tail.length > 20) tail.shift();
          }
          if (!unsubscribed) sub.next({ stream, text, at: now() });
        }
      };
      child.stdout?.on('data', (c: Buffer) => emit('stdout', split.stdout.push(c)));
      child.stderr?.on('data', (c: Buffer) => emit('stderr', split.stderr.push(c)));
      const timeoutMs = opts.timeoutMs ?? DEFAULT_STREAM_TIMEOUT_MS;
      let timedOut = false;
      let spawnError = false;
      let settled: () => void = () => undefined;
      const finished = new Promise<void>((r) => (settled = r));
      const tracked = new Tracked(child, () => {
        clearTimeout(timer);
        inputSub?.unsubscribe();
        settled();
        if (spawnError || unsubscribed) return;
        emit('stdout', split.stdout.end());
        emit('stderr', split.stderr.end());
        const code = tracked.exitCode;
        const result: ExecResult = { argv, exitCode: code, signal: tracked.signal, stdout: '', stderr: tail.join('\n'), durationMs: now() - start };
        if (timedOut) sub.error(new CommandTimeoutError(this.name, result, timeoutMs));
        else if (code === 0 || (code !== null && opts.okExitCodes?.includes(code))) sub.complete();
        else sub.error(new CommandFailedError(this.name, result));
      });
      const timer = setTimeout(() => {
        timedOut = true;
        tracked.stop(2000);
      }, timeoutMs);
      child.on('error', (e) => {
        spawnError = true;
        tracked.finish();
        sub.error(new NodeError(this.name, `${this.name}: cannot run ${cmd}: ${e.message}`, { cause: e }));
      });
      return () => {
        if (tracked.isFinished) return;
        unsubscribed = true;
        tracked.stop(2000);
        this.pending.add(finished);
        void finished.finally(() => this.pending.delete(finished));
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
