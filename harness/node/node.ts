// The one way the harness touches a machine. Workloads, faults, monitors and fabric code see only
// this interface, so they run unchanged on a real lab (SshNode) or this machine (LocalNode).
import type { Observable } from 'rxjs';
import { showArgv } from './argv.ts';
import { redactText } from '../secrets.ts';

export interface ExecOptions {
  /** Ends the command (and its process group) after this long. Default 60 s. */
  timeoutMs?: number;
  /** Data for the command's stdin (closed afterwards). */
  input?: string | Buffer;
  /** Extra environment, applied with env(1) on the node. */
  env?: Readonly<Record<string, string>>;
  /** Time between SIGTERM and SIGKILL when a command is stopped. Default 2 s. */
  killGraceMs?: number;
}

export interface StreamOptions {
  /** Ends the stream with a CommandTimeoutError after this long. Default 10 min. */
  timeoutMs?: number;
  env?: Readonly<Record<string, string>>;
  /** Treat these exit codes as success (e.g. a monitor stopped by SIGTERM). */
  okExitCodes?: readonly number[];
  /** Written to the command's stdin as they come; stdin closes when this completes. */
  input?: Observable<string>;
  /** Who runs it, for the process journal: a run's cleanup spares what a live owner still uses. */
  owner?: string;
}

export interface ExecResult {
  argv: readonly string[];
  exitCode: number | null;
  /** Signal name with the SIG prefix (SIGTERM), when the command died of one. */
  signal: string | null;
  stdout: string;
  stderr: string;
  durationMs: number;
}

/** A process a command started on a node: enough to find it again, and only it (PIDs are reused:
 *  the start time, in clock ticks since boot, tells a later process with the same PID apart). */
export interface NodeProcess {
  pid: number;
  pgid: number;
  /** field 22 of /proc/PID/stat */
  startTime: string;
}

/** Told about every long-running (streamed) command: a lab journals them, so that after the
 *  harness is killed the next run can stop exactly the processes it left behind. */
export interface ProcessHooks {
  started(node: string, p: NodeProcess, argv: readonly string[], owner?: string): void;
  ended(node: string, p: NodeProcess): void;
}

export interface OutputLine {
  stream: 'stdout' | 'stderr';
  text: string;
  /** When the harness received the line (epoch ms, sub-ms resolution). */
  at: number;
}

export interface Node {
  readonly name: string;
  /** Human-readable address (host:port, "local"): for messages, never a secret. */
  readonly address: string;
  /** Runs argv; resolves with the result whatever the exit code. Rejects on timeout or lost connection. */
  exec(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Like exec, but rejects with CommandFailedError on a non-zero exit. */
  run(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Lines as they come. Completes on exit 0, errors on other exits or timeout; unsubscribing ends the command. */
  stream(argv: readonly string[], opts?: StreamOptions): Observable<OutputLine>;
  readFile(path: string, opts?: { timeoutMs?: number }): Promise<string>;
  /** Set by the lab that owns the node (see ProcessHooks). */
  processHooks?: ProcessHooks;
  /** Small values (sysfs) are written with a single write(2); errors carry the errno name. */
  writeFile(path: string, data: string | Buffer, opts?: { timeoutMs?: number }): Promise<void>;
  /** Waits for background clean-ups (stopped streams) to finish. */
  settle(): Promise<void>;
  /** The node is known to be down (VM lab: its kernel crashed and it does not answer): commands in
   *  flight fail now and new ones at once, each with NodeDownError(why), until it is reset. */
  markDown?(why: string): void;
  close(): Promise<void>;
}

export class NodeError extends Error {
  readonly node: string;
  constructor(node: string, message: string, opts?: { cause?: unknown }) {
    // A failed command's message carries its argv and stderr: secrets and key material are masked.
    super(redactText(message), opts);
    this.node = node;
  }
}

export class CommandFailedError extends NodeError {
  override name = 'CommandFailedError';
  readonly result: ExecResult;
  constructor(node: string, result: ExecResult) {
    const how = result.signal ? `was killed by ${result.signal}` : `exited with ${result.exitCode}`;
    const err = result.stderr.trim().split('\n').slice(-5).join('\n');
    super(node, `${node}: \`${showArgv(result.argv)}\` ${how}${err ? `: ${err}` : ''}`);
    this.result = result;
  }
}

export class CommandTimeoutError extends NodeError {
  override name = 'CommandTimeoutError';
  readonly partial: ExecResult;
  readonly timeoutMs: number;
  constructor(node: string, partial: ExecResult, timeoutMs: number) {
    super(node, `${node}: \`${showArgv(partial.argv)}\` timed out after ${timeoutMs} ms (stopped it)`);
    this.partial = partial;
    this.timeoutMs = timeoutMs;
  }
}

/** The node could not be reached at all (refused, unreachable, authentication, host key). */
export class NodeUnreachableError extends NodeError {
  override name = 'NodeUnreachableError';
}

/** The lab knows the node is down (a VM guest whose kernel crashed): the command was not tried. */
export class NodeDownError extends NodeUnreachableError {
  override name = 'NodeDownError';
}

/** The host key did not match what is pinned or known: possible impersonation. */
export class HostKeyError extends NodeUnreachableError {
  override name = 'HostKeyError';
}

/** The connection dropped while a command was running. The node may come back; the command is lost. */
export class ConnectionLostError extends NodeError {
  override name = 'ConnectionLostError';
}

const ERRNO_TEXT: Record<string, string> = {
  'Invalid argument': 'EINVAL',
  'Operation not supported': 'EOPNOTSUPP',
  'Device or resource busy': 'EBUSY',
  'Operation not permitted': 'EPERM',
  'No such device': 'ENODEV',
  'File exists': 'EEXIST',
  'No such file or directory': 'ENOENT',
  'Permission denied': 'EACCES',
  'Invalid request descriptor': 'EBADR',
  'Network is down': 'ENETDOWN',
  'Cannot assign requested address': 'EADDRNOTAVAIL',
  'No such device or address': 'ENXIO',
  'Numerical result out of range': 'ERANGE',
  'Read-only file system': 'EROFS',
};

export class FileWriteError extends NodeError {
  override name = 'FileWriteError';
  readonly path: string;
  /** errno name (EINVAL…) when the node reported one */
  readonly errno: string | undefined;
  constructor(node: string, path: string, stderr: string) {
    const text = Object.keys(ERRNO_TEXT).find((t) => stderr.includes(t));
    const errno = text ? ERRNO_TEXT[text] : undefined;
    super(node, `${node}: writing ${path} failed${errno ? ` with ${errno}` : ''}: ${stderr.trim() || 'no error text'}`);
    this.path = path;
    this.errno = errno;
  }
}

/** The most a small write may carry: bash's printf builtin flushes its 8 KiB buffer with one
 *  write(2) (strace), and a sysfs or kmsg value must arrive whole. */
export const SMALL_WRITE_BYTES = 4000;

/** argv that writes a small value (≤ SMALL_WRITE_BYTES, no NUL) to a file with exactly one
 *  write(2) and reports errno text. bash's builtin, not dash's (which says only "I/O error") nor a
 *  pipe into dd (one more fork: 50 ms a write on a TCG guest). */
export function smallWriteArgv(path: string, value: string): string[] {
  return ['bash', '-c', 'printf "%s" "$1" > "$2"', 'write', value, path];
}

export function bigWriteArgv(path: string): string[] {
  return ['dd', `of=${path}`, 'bs=1M', 'status=none'];
}

export function envArgv(argv: readonly string[], env: Readonly<Record<string, string>> | undefined): string[] {
  if (!env || Object.keys(env).length === 0) return [...argv];
  for (const k of Object.keys(env)) if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new Error(`bad environment variable name: ${k}`);
  return ['env', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...argv];
}

export const DEFAULT_EXEC_TIMEOUT_MS = 60_000;
export const DEFAULT_STREAM_TIMEOUT_MS = 600_000;
