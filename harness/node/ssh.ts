// A node reached over SSH (ssh2): one connection reused for every command, bounded channels,
// keepalive, automatic reconnect on the next command, host keys always verified.
//
// Stopping a remote command: closing a channel leaves the process running and sshd refuses
// signal requests for root, so every command runs under a tiny wrapper that reports its process
// group first; a timeout or an unsubscribe then runs `kill -TERM -- -PGID` (then KILL) over the
// same connection.
import { readFileSync } from 'node:fs';
import ssh2 from 'ssh2';
import type { Client as ClientType, ClientChannel, ConnectConfig } from 'ssh2';
import { Observable, type Subscription } from 'rxjs';
import { now, sleep } from '../clock.ts';
import { nodeLog } from '../log.ts';
import { quoteArgv, showArgv } from './argv.ts';
import { BaseNode } from './base.ts';
import { admit, refusal, refusedStream } from './gate.ts';
import { ALL_HOST_KEY_ALGORITHMS, algorithmsForKeyType, fingerprint, keyTypeOf, type HostKeyPolicy } from './hostkey.ts';
import { ChannelLimiter, CloseLedger } from './limiter.ts';
import { EXEC_LOG, noteExec } from './exec-log.ts';
import { LineSplitter, OutputBuffer } from './lines.ts';
import { Agent, AGENT_SCRIPT } from './agent.ts';
import {
  CommandFailedError,
  CommandTimeoutError,
  ConnectionLostError,
  DEFAULT_EXEC_TIMEOUT_MS,
  DEFAULT_STREAM_TIMEOUT_MS,
  envArgv,
  HostKeyError,
  NodeDownError,
  NodeUnreachableError,
  type ExecOptions,
  type ExecResult,
  type NodeProcess,
  type OutputLine,
  type StreamOptions,
} from './node.ts';

// ssh2 is CommonJS: its named exports are undefined under ESM, the default export has them.
const { Client } = ssh2 as unknown as { Client: new () => ClientType };

export interface SshNodeOptions {
  name: string;
  host: string;
  port?: number;
  user?: string;
  /** Private key contents, or a path to read it from. Never logged. */
  privateKey?: Buffer;
  identityFile?: string;
  /** SSH agent socket (e.g. process.env.SSH_AUTH_SOCK). */
  agent?: string;
  hostKey: HostKeyPolicy;
  connectTimeoutMs?: number;
  keepaliveMs?: number;
  keepaliveCountMax?: number;
  /** The server's MaxSessions (channels per connection). OpenSSH's default is 10. */
  maxSessions?: number;
  /** Run short commands through the command agent (agent.ts). Default: on, unless
   *  RDMA_FAILOVER_AGENT=0; off by itself where the agent cannot start. */
  commandAgent?: boolean;
  /** The agent's interpreter (tests: a missing one shows the fallback). Default perl. */
  agentInterpreter?: string;
}

/** Prints "\x01rf-pgid PID PGID STARTTIME" on stderr, then becomes the command. The login shell execs
 *  it, so the command is sshd's direct child: its exit signal reaches us and it leads its own process
 *  group. (The wrapper's comm is "sh": no spaces, so /proc/$$/stat splits into its fields.) */
const WRAPPER =
  'read -r _ _ _ _ g _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ st _ < /proc/$$/stat 2>/dev/null; printf "\\001rf-pgid %s %s %s\\n" "$$" "${g:-0}" "${st:-0}" >&2; exec "$@"';
// eslint-disable-next-line no-control-regex -- the wrapper's marker starts with \x01 so it cannot clash with output
const MARKER = /^\x01rf-pgid (\d+) (\d+) (\d+)\n/;

interface Op {
  fail(err: Error): void;
  /** the connection its channel runs on (unset until the channel opens) */
  client?: ClientType;
}

type Target = NodeProcess;

/** A channel's exit status as ssh2 reported it ('exit' is optional in the protocol). */
interface ExitStatus {
  code: number | null;
  signal: string | null;
  seen: boolean;
}

/** ssh2's own test before it writes ("Not connected"): a reset peer leaves a socket that no longer writes. */
function socketDead(client: ClientType): boolean {
  const sock = (client as unknown as { _sock?: { writable?: boolean; _readableState?: { ended?: boolean } } })._sock;
  return !sock || !sock.writable || !sock._readableState || sock._readableState.ended !== false;
}

export class SshNode extends BaseNode {
  readonly name: string;
  readonly address: string;
  private readonly opts: SshNodeOptions;
  private readonly log;
  private client: ClientType | undefined;
  private connecting: Promise<ClientType> | undefined;
  private readonly ops = new Set<Op>();
  private readonly pending = new Set<Promise<unknown>>();
  private readonly limiter: ChannelLimiter;
  /** Per connection: the channels opened and closed on it, and how many the server surely freed (refused()). */
  private readonly ledgers = new WeakMap<ClientType, CloseLedger>();
  private closed = false;
  private warnedInsecure = false;
  /** The command agent of each connection; `agentOff` says why there is none on this node. */
  private readonly agents = new WeakMap<ClientType, Promise<Agent<ClientType> | undefined>>();
  agentOff: string | undefined;
  /** Agents that ended while the connection lived: each lost its running commands. */
  agentDeaths = 0;
  /** How many times the connection was (re)established: tests and reports use it. */
  connects = 0;
  /** Channel refusals: transient (a close not yet freed) and definitive (the server's real limit). */
  readonly refusals = { transient: 0, definitive: 0 };
  lastDisconnect: string | undefined;
  /** why the node is known to be down (markDown), until disconnect() (the guest was reset) */
  private down: string | undefined;

  constructor(opts: SshNodeOptions) {
    super();
    this.opts = opts;
    this.name = opts.name;
    this.address = `${opts.user ?? 'root'}@${opts.host}:${opts.port ?? 22}`;
    this.log = nodeLog(opts.name);
    this.limiter = new ChannelLimiter(opts.maxSessions ?? 10);
  }

  get channels(): { inFlight: number; limit: number; queued: number } {
    return this.limiter.current;
  }

  private connect(): Promise<ClientType> {
    if (this.closed) return Promise.reject(new NodeUnreachableError(this.name, `${this.name}: node is closed`));
    if (this.client) return Promise.resolve(this.client);
    this.connecting ??= this.open().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  /** Connects; a pinned key of unknown type is looked for among every key type the server has. */
  private async open(): Promise<ClientType> {
    const offer = this.opts.hostKey.algorithms?.() ?? ALL_HOST_KEY_ALGORITHMS;
    const presented: string[] = [];
    let excluded: string[] = [];
    for (;;) {
      try {
        return await this.openOnce(offer.filter((a) => !excluded.includes(a)), offer !== ALL_HOST_KEY_ALGORITHMS);
      } catch (e) {
        const k = (e as { presented?: { type: string; fingerprint: string; reason: string } }).presented;
        if (!(e instanceof HostKeyError) || !k || k.reason !== 'mismatch' || !this.opts.hostKey.probeKeyTypes) throw e;
        presented.push(`${k.type} ${k.fingerprint}`);
        excluded = [...excluded, ...algorithmsForKeyType(k.type)];
        if (!offer.some((a) => !excluded.includes(a))) throw e;
        this.log.debug({ presented: k.type }, 'pinned host key not of this type: trying the server\'s other key types');
        // The last attempt ends with "no matching host key format" once the server has no other type.
        this.probedKeys = presented;
      }
    }
  }

  /** set while probing a pin: the keys the server presented so far (for the final error) */
  private probedKeys: string[] | undefined;

  private openOnce(serverHostKey: string[], restricted: boolean): Promise<ClientType> {
    const o = this.opts;
    const client = new Client();
    const started = now();
    let hostKeyProblem: { detail: string; reason: string; type: string; fingerprint: string } | undefined;
    const cfg: ConnectConfig = {
      host: o.host,
      port: o.port ?? 22,
      username: o.user ?? 'root',
      readyTimeout: o.connectTimeoutMs ?? 10_000,
      keepaliveInterval: o.keepaliveMs ?? 5000,
      keepaliveCountMax: o.keepaliveCountMax ?? 3,
      algorithms: { serverHostKey: serverHostKey as NonNullable<ConnectConfig['algorithms']>['serverHostKey'] },
      hostVerifier: (key: Buffer) => {
        const v = o.hostKey.check(key);
        if (!v.ok) {
          hostKeyProblem = { detail: v.detail, reason: v.reason, type: keyTypeOf(key), fingerprint: fingerprint(key) };
          return false;
        }
        if (o.hostKey.insecure && !this.warnedInsecure) {
          this.warnedInsecure = true;
          process.stderr.write(
            `\n!!! WARNING: host key verification is DISABLED for node ${this.name} (${this.address}).\n` +
              `!!! Accepted ${fingerprint(key)} without checking: anyone on the path could impersonate this node.\n` +
              `!!! Use host_key: { sha256: ... } or { known_hosts: ... } for anything but a throwaway lab.\n\n`,
          );
        }
        return true;
      },
    };
    if (o.privateKey) cfg.privateKey = o.privateKey;
    else if (o.identityFile) cfg.privateKey = readFileSync(o.identityFile);
    if (o.agent) cfg.agent = o.agent;

    return new Promise<ClientType>((resolve, reject) => {
      let ready = false;
      client.on('ready', () => {
        ready = true;
        this.client = client;
        this.ledgers.set(client, new CloseLedger());
        this.connects++;
        if (this.connects > 1) this.log.warn({ afterMs: Math.round(now() - started), lastDisconnect: this.lastDisconnect }, 'reconnected');
        this.probedKeys = undefined;
        resolve(client);
      });
      // An error listener stays for the client's whole life: an unhandled ECONNRESET would crash Node.
      client.on('error', (err: Error & { level?: string; code?: string }) => {
        if (!ready) {
          client.end();
          reject(this.connectError(err, hostKeyProblem, restricted ? serverHostKey : undefined));
          return;
        }
        this.lastDisconnect = err.level === 'client-timeout' ? 'keepalive timeout (node stopped answering)' : err.message;
      });
      client.on('close', () => {
        if (this.client === client) this.client = undefined;
        if (!ready) {
          reject(this.connectError(new Error('connection closed during handshake'), hostKeyProblem, restricted ? serverHostKey : undefined));
          return;
        }
        const why = this.lastDisconnect ?? 'connection closed';
        this.lastDisconnect = why;
        if (!this.closed) this.log.warn({ why }, 'SSH connection lost');
        const err = new ConnectionLostError(this.name, `${this.name}: SSH connection to ${this.address} lost: ${why}`);
        // Only what ran on this connection: a reset guest's old connection may close after a new one opened.
        const idle = !this.client && !this.connecting;
        for (const op of [...this.ops]) if (op.client === client || (!op.client && idle)) op.fail(err);
      });
      client.connect(cfg);
      // Small SSH packets (channel open, exec, EOF) must not wait for Nagle + delayed ACK (~40 ms each).
      client.setNoDelay(true);
    });
  }

  private connectError(err: Error & { level?: string; code?: string }, hostKeyProblem: { detail: string; reason: string; type: string; fingerprint: string } | undefined, offered: string[] | undefined): Error {
    const where = `${this.name} (${this.address})`;
    if (hostKeyProblem) {
      const probed = this.probedKeys?.length ? ` (it also presented ${this.probedKeys.join(', ')}: none matches)` : '';
      return Object.assign(new HostKeyError(this.name, `${where}: host key rejected: ${hostKeyProblem.detail}${probed}`, { cause: err }), { presented: hostKeyProblem });
    }
    if (/no matching host key format/.test(err.message)) {
      const seen = this.probedKeys;
      this.probedKeys = undefined;
      if (seen?.length) return new HostKeyError(this.name, `${where}: host key rejected: it presented ${seen.join(', ')} and none of them matches the ${this.opts.hostKey.description}`, { cause: err });
      if (offered) return new HostKeyError(this.name, `${where}: host key rejected: the server has none of the key types ${this.opts.hostKey.description} lists for it (${offered.join(', ')}): its keys changed, or the file is out of date`, { cause: err });
    }
    const code = err.code ?? '';
    let why = err.message;
    if (code === 'ECONNREFUSED') why = 'connection refused (is sshd running? right port?)';
    else if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') why = 'host unreachable';
    else if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') why = 'host name does not resolve';
    else if (err.level === 'client-timeout' || /Timed out while waiting for handshake/.test(err.message)) {
      why = `no SSH handshake within ${this.opts.connectTimeoutMs ?? 10_000} ms`;
    } else if (err.level === 'client-authentication') why = 'authentication failed (key not accepted)';
    return new NodeUnreachableError(this.name, `${where}: cannot connect: ${why}`, { cause: err });
  }

  /**
   * Opens a channel for argv, waiting for a free slot; adapts to the server's MaxSessions.
   *
   * The exit status is recorded inside ssh2's callback, synchronously: ssh2 calls it on
   * CHANNEL_SUCCESS and, when the command was quick, goes on in the same parse loop to emit 'exit'
   * for the exit-status packet that arrived in the same TCP read. A listener attached one
   * microtask later (after the promise resolves) misses it, and the command looks lost.
   */
  private async openChannel(argv: readonly string[], control = false): Promise<{ ch: ClientChannel; release: () => void; client: ClientType; exit: ExitStatus }> {
    for (let attempt = 0; ; attempt++) {
      const client = await this.connect();
      const slot = await this.limiter.acquire(control);
      // What the server may hold besides this channel when this open reaches it: ours whose open went
      // out before it and are not closed, and ours closed that it may not have processed yet (see
      // refused()). Counted when the open is sent, not when the slot is granted: a burst of opens is
      // granted all at once, then sent one by one, and the first refused one must count only those
      // ahead of it (counted at grant, every open of a burst saw the whole burst, and the limit came
      // out above the server's).
      const ledger = this.ledgers.get(client) ?? new CloseLedger();
      let others = 0;
      let unconfirmed = 0;
      let sent = false;
      try {
        const opened = await new Promise<{ ch: ClientChannel; exit: ExitStatus }>((resolve, reject) => {
          others = ledger.live;
          unconfirmed = ledger.unconfirmed;
          ledger.live++;
          sent = true;
          client.exec(`exec ${quoteArgv(['sh', '-c', WRAPPER, 'rf', ...argv])}`, (err, ch) => {
            if (err) return reject(err);
            const exit: ExitStatus = { code: null, signal: null, seen: false };
            ch.on('exit', (code: number | null, sig?: string) => {
              exit.seen = true;
              exit.code = code ?? null;
              exit.signal = sig ? (sig.startsWith('SIG') ? sig : `SIG${sig}`) : null;
            });
            resolve({ ch, exit });
          });
        });
        let released = false;
        const release = () => {
          if (released) return;
          released = true;
          ledger.live--;
          ledger.closed++; // its CHANNEL_CLOSE was written before this (on 'close', or by halt())
          slot();
        };
        return { ...opened, release, client };
      } catch (e) {
        const err = e as Error;
        if (sent) ledger.live--; // refused or failed: nothing for the server to free
        // A refusal that proves the limit lowers it before this slot goes to a waiter (refused()
        // shrinks synchronously), so the waiter is not sent into the same refusal.
        const refusal = /Channel open failure/.test(err.message) && attempt < 60 && this.client ? this.refused(client, ledger, others, unconfirmed) : undefined;
        slot();
        if (refusal) {
          await refusal;
          continue;
        }
        if (/Not connected/.test(err.message) && attempt < 3) {
          // The socket died before ssh2 said so ('close' comes later): start over on a new connection.
          this.dropDeadClient(client);
          continue;
        }
        if (err instanceof NodeUnreachableError || err instanceof ConnectionLostError) throw err;
        throw new ConnectionLostError(this.name, `${this.name}: cannot open a channel: ${err.message}`, { cause: err });
      }
    }
  }

  private dropDeadClient(client: ClientType): void {
    if (this.client === client) this.client = undefined;
    client.destroy();
    this.lastDisconnect ??= 'socket closed';
  }

  /**
   * The server refused a channel. sshd frees a session only in the loop turn after it read our
   * CHANNEL_CLOSE, so an open that arrived in the same read as a close is refused below
   * MaxSessions: a transient refusal, which a loaded server makes frequent (it reads more at once).
   * A refusal is proof of a lower MaxSessions only if every channel we had closed was confirmed freed
   * when the open was sent; otherwise one round trip confirms them, and the open is retried.
   */
  private async refused(client: ClientType, ledger: CloseLedger, others: number, unconfirmed: number): Promise<void> {
    if (unconfirmed === 0) {
      this.refusals.definitive++;
      this.limiter.shrinkTo(others);
      this.log.debug({ limit: this.limiter.current.limit }, 'server refused a channel with every close confirmed; lowering the channel limit');
      return;
    }
    this.refusals.transient++;
    await this.roundTrip(client, ledger);
  }

  /**
   * A keepalive round trip: its answer proves the server has read everything sent before it, so
   * every close sent before is freed by the time the next open arrives. ssh2 (pinned) keeps its
   * ping private: the answer is the next callback on its global-request queue, which is FIFO like
   * the server's replies. Resolves false (after a pause) if there is no answer.
   */
  private roundTrip(client: ClientType, closes: CloseLedger, timeoutMs = 5000): Promise<boolean> {
    const sent = closes.closed;
    const c = client as unknown as { _callbacks?: (() => void)[]; _protocol?: { ping(): void } };
    if (!c._callbacks || !c._protocol) return sleep(50).then(() => false);
    const callbacks = c._callbacks;
    const protocol = c._protocol;
    return new Promise((res) => {
      const timer = setTimeout(() => res(false), timeoutMs);
      callbacks.push(() => {
        clearTimeout(timer);
        closes.confirm(sent);
        res(true);
      });
      protocol.ping();
    });
  }

  /** Sends TERM, then KILL after grace, to a command's process group. Best effort. */
  private async stop(target: Target, graceMs: number, exited: () => boolean): Promise<void> {
    // Kill the whole group only when the command leads it (sshd starts sessions with setsid).
    const who = target.pgid === target.pid ? `-${target.pgid}` : String(target.pid);
    await this.signal('TERM', who);
    const deadline = now() + graceMs;
    while (!exited() && now() < deadline) await sleep(50);
    if (!exited()) await this.signal('KILL', who);
  }

  /** Signals queued in this turn of the event loop, by signal: one `kill` each for all of them. */
  private readonly signals = new Map<string, { who: string[]; done: (() => void)[] }>();

  /**
   * Sends a signal to a process (group). The monitors stop six streams per node at once, and a
   * channel with its own shell costs a guest under emulation ~0.4 s: the signals sent in one turn
   * go in one `kill` (which signals every target it can, and goes on past one already gone).
   */
  private signal(sig: string, who: string): Promise<void> {
    return new Promise((res) => {
      const q = this.signals.get(sig);
      if (q) {
        q.who.push(who);
        q.done.push(res);
        return;
      }
      this.signals.set(sig, { who: [who], done: [res] });
      setImmediate(() => {
        const batch = this.signals.get(sig)!;
        this.signals.delete(sig);
        void this.sendKill(sig, batch.who).finally(() => batch.done.forEach((d) => d()));
      });
    });
  }

  private async sendKill(sig: string, who: string[]): Promise<void> {
    try {
      // `--` is required: the wrapper execs procps' kill, and procps-ng 4.0.2 reads `kill -KILL -113`
      // (no such group) as a kill of every process it may signal — the whole guest.
      const { ch, release } = await this.openChannel(['kill', `-${sig}`, '--', ...who], true);
      await new Promise<void>((res) => {
        ch.on('close', () => res());
        ch.resume();
        ch.stderr.resume();
        ch.end();
      });
      release();
    } catch {
      // node gone: nothing to stop
    }
  }

  /** The agent of the current connection, started on first use; undefined where it is off. */
  private agent(): Promise<Agent<ClientType> | undefined> {
    const off = this.opts.commandAgent === false || process.env.RDMA_FAILOVER_AGENT === '0';
    if (off || this.agentOff) return Promise.resolve(undefined);
    return this.connect().then((client) => {
      if (socketDead(client)) {
        // As in openChannel: the socket died before ssh2 said so; a write to the agent would vanish.
        this.dropDeadClient(client);
        return this.agent();
      }
      let a = this.agents.get(client);
      if (!a) {
        a = this.startAgent(client);
        this.agents.set(client, a);
        // a failed start is tried again by the next command (unless it proved the agent impossible)
        a.catch(() => this.agents.delete(client));
      }
      return a;
    });
  }

  private async startAgent(client: ClientType): Promise<Agent<ClientType> | undefined> {
    const { ch, release, client: on } = await this.openChannel([this.opts.agentInterpreter ?? 'perl', '-e', AGENT_SCRIPT]);
    const agent = new Agent<ClientType>(ch, on, (why) => {
      release();
      ch.close();
      if (this.agents.get(client) && this.client === on && !this.closed) {
        this.agentDeaths++;
        this.log.warn({ why, deaths: this.agentDeaths }, 'command agent ended; the next command starts a new one');
        // An agent that keeps dying is not worth its lost commands: channels from then on.
        if (this.agentDeaths >= 3) this.agentOff = `it ended ${this.agentDeaths} times (last: ${why})`;
      }
      this.agents.delete(client);
    });
    ch.stderr.resume();
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        agent.readyPromise,
        new Promise((_, rej) => (timer = setTimeout(() => rej(new Error('no READY from the command agent within 30 s')), 30_000))),
      ]);
      return agent;
    } catch (e) {
      ch.close();
      // The connection went away meanwhile (a guest reset): this command takes a channel, and the
      // next connection tries the agent again.
      if (this.client !== on || this.closed) return undefined;
      // It cannot run here (no perl, a noexec policy…): commands go on channels, as without it.
      this.agentOff = (e as Error).message;
      this.log.warn({ why: this.agentOff }, 'command agent unavailable: each command gets a channel of its own');
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  exec(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const p = this.execOnChannel(argv, opts);
    if (EXEC_LOG) noteExec(EXEC_LOG, this.name, argv, p);
    return p;
  }

  private execOnChannel(argv: readonly string[], opts: ExecOptions): Promise<ExecResult> {
    if (this.down) return Promise.reject(this.downError(argv));
    const full = envArgv(argv, opts.env);
    const timeoutMs = opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
    const start = now();
    let stopInFlight: ((why: string) => Promise<void>) | undefined;
    const gate = admit(this.name, argv, (why) => stopInFlight?.(why) ?? Promise.resolve());
    if ('refused' in gate) return Promise.reject(gate.refused);
    return new Promise<ExecResult>((resolve, reject) => {
      let settled = false;
      let channel: ClientChannel | undefined;
      let releaseSlot: (() => void) | undefined;
      let target: Target | undefined;
      let status: ExitStatus = { code: null, signal: null, seen: false };
      let timedOut = false;
      let exited = false;
      const out = new OutputBuffer();
      const errBuf = new OutputBuffer();
      let errHead = Buffer.alloc(0);
      let markerSeen = false;
      const result = (): ExecResult => ({ argv, exitCode: status.code, signal: status.signal, stdout: out.text(), stderr: errBuf.text(), durationMs: now() - start });
      const finish = (fn: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.ops.delete(op);
        releaseSlot?.();
        gate.release();
        fn();
      };
      const op: Op = {
        fail: (err) => finish(() => reject(err)),
      };
      this.ops.add(op);
      // At its timeout, or when the test that started it stops (see gate.ts): the same stop.
      let halting: Promise<void> | undefined;
      const halt = (error: () => Error): Promise<void> => {
        if (settled) return Promise.resolve();
        if (halting) return halting;
        timedOut = true;
        clearTimeout(timer);
        const graceMs = opts.killGraceMs ?? 2000;
        const p = (async () => {
          // The wrapper may not have reported its process group yet: give it a moment.
          const markerDeadline = now() + 1000;
          while (!target && !exited && now() < markerDeadline) await sleep(20);
          if (target) await this.stop(target, graceMs, () => exited);
        })().then(async () => {
          // Give the channel a moment to deliver the exit, then give up on it.
          const deadline = now() + 1000;
          while (!exited && now() < deadline) await sleep(20);
          channel?.close();
          finish(() => reject(error()));
        });
        this.track(p);
        halting = p;
        return p;
      };
      const timer = setTimeout(() => void halt(() => new CommandTimeoutError(this.name, result(), timeoutMs)), timeoutMs);
      stopInFlight = (why) => halt(() => refusal(this.name, argv, why, true));

      const onChannel = () =>
        this.openChannel(full).then(({ ch, release, client, exit }) => {
          channel = ch;
          releaseSlot = release;
          op.client = client;
          status = exit;
          if (settled) {
            ch.close();
            return;
          }
          ch.on('data', (c: Buffer) => out.push(c));
          ch.stderr.on('data', (c: Buffer) => {
            if (markerSeen) return errBuf.push(c);
            errHead = Buffer.concat([errHead, c]);
            const m = MARKER.exec(errHead.toString('latin1'));
            if (m) {
              markerSeen = true;
              target = { pid: Number(m[1]), pgid: Number(m[2]), startTime: m[3]! };
              const restAt = Buffer.byteLength(m[0], 'latin1');
              if (errHead.length > restAt) errBuf.push(errHead.subarray(restAt));
            } else if (errHead.length > 256 || (errHead.length > 0 && errHead[0] !== 1)) {
              // no wrapper marker (exec failed before it ran): keep everything as stderr
              markerSeen = true;
              errBuf.push(errHead);
            }
          });
          ch.on('exit', () => (exited = true));
          if (exit.seen) exited = true;
          ch.on('close', () => {
            exited = true;
            if (timedOut) return; // halt() (timeout or gate) settles
            if (!exit.seen) {
              // closed without an exit status: the connection went away under us
              const why = this.lastDisconnect ?? 'channel closed without exit status';
              finish(() => reject(new ConnectionLostError(this.name, `${this.name}: \`${showArgv(argv)}\` lost: ${why}`)));
              return;
            }
            finish(() => resolve(result()));
          });
          if (opts.input !== undefined) ch.end(opts.input);
          else ch.end();
        });
      // The same command through the agent: the same output, exit status, process group and stops.
      const onAgent = (agent: Agent<ClientType>) => {
        op.client = agent.client;
        releaseSlot = agent.launch(full, {
          started: (pid, startTime) => (target = { pid, pgid: pid, startTime }),
          out: (c) => out.push(c),
          err: (c) => errBuf.push(c),
          exit: (code, signal) => {
            status = { code, signal, seen: true };
            exited = true;
            if (!timedOut) finish(() => resolve(result()));
          },
          lost: (why) => {
            exited = true;
            if (!timedOut) finish(() => reject(new ConnectionLostError(this.name, `${this.name}: \`${showArgv(argv)}\` lost: ${why}`)));
          },
        });
      };
      (opts.input === undefined ? this.agent() : Promise.resolve(undefined))
        .then((agent) => {
          if (settled) return;
          if (agent) onAgent(agent);
          else return onChannel();
        })
        .catch((e: Error) => finish(() => reject(e)));
    });
  }

  stream(argv: readonly string[], opts: StreamOptions = {}): Observable<OutputLine> {
    const full = envArgv(argv, opts.env);
    return new Observable<OutputLine>((sub) => {
      const refused = refusedStream(this.name, argv);
      if (refused) return sub.error(refused);
      if (this.down) return sub.error(this.downError(argv));
      const start = now();
      let channel: ClientChannel | undefined;
      let releaseSlot: (() => void) | undefined;
      let target: Target | undefined;
      let status: ExitStatus = { code: null, signal: null, seen: false };
      let exited = false;
      let ended = false;
      let timedOut = false;
      let inputSub: Subscription | undefined;
      const tail: string[] = [];
      const split = { stdout: new LineSplitter(), stderr: new LineSplitter() };
      let markerSeen = false;
      const end = (fn: () => void) => {
        if (ended) return;
        ended = true;
        clearTimeout(timer);
        inputSub?.unsubscribe();
        this.ops.delete(op);
        releaseSlot?.();
        fn();
      };
      const op: Op = { fail: (err) => end(() => sub.error(err)) };
      this.ops.add(op);
      const emit = (stream: 'stdout' | 'stderr', lines: string[]) => {
        for (let text of lines) {
          if (stream === 'stderr' && !markerSeen) {
            markerSeen = true;
            const m = MARKER.exec(`${text}\n`);
            if (m) {
              target = { pid: Number(m[1]), pgid: Number(m[2]), startTime: m[3]! };
              this.processHooks?.started(this.name, target, argv, opts.owner);
              continue;
            }
            if (text.startsWith('\x01')) text = text.slice(1);
          }
          if (stream === 'stderr') {
            tail.push(text);
            if (tail.length > 20) tail.shift();
          }
          if (!ended) sub.next({ stream, text, at: now() });
        }
      };
      const timeoutMs = opts.timeoutMs ?? DEFAULT_STREAM_TIMEOUT_MS;
      const timer = setTimeout(() => {
        timedOut = true;
        const r: ExecResult = { argv, exitCode: status.code, signal: status.signal, stdout: '', stderr: tail.join('\n'), durationMs: now() - start };
        this.halt(channel, () => target, () => exited);
        end(() => sub.error(new CommandTimeoutError(this.name, r, timeoutMs)));
      }, timeoutMs);

      this.openChannel(full)
        .then(({ ch, release, client, exit }) => {
          channel = ch;
          releaseSlot = release;
          op.client = client;
          status = exit;
          if (ended) {
            // Unsubscribed before the channel opened: stop the command as soon as it reports its group.
            let head = '';
            ch.stderr.on('data', (c: Buffer) => {
              head += c.toString('latin1');
              const m = MARKER.exec(head);
              if (m && !target) {
                target = { pid: Number(m[1]), pgid: Number(m[2]), startTime: m[3]! };
                this.processHooks?.started(this.name, target, argv, opts.owner);
                this.halt(undefined, target, () => exited);
              }
            });
            ch.on('close', () => {
              exited = true;
              if (target && exit.seen) this.processHooks?.ended(this.name, target);
              release();
            });
            releaseSlot = undefined;
            ch.resume();
            ch.end();
            return;
          }
          ch.on('data', (c: Buffer) => emit('stdout', split.stdout.push(c)));
          ch.stderr.on('data', (c: Buffer) => emit('stderr', split.stderr.push(c)));
          ch.on('close', () => {
            exited = true;
            // Only an exit status proves the process is gone: without one it stays journaled.
            if (target && exit.seen) this.processHooks?.ended(this.name, target);
            emit('stdout', split.stdout.end());
            emit('stderr', split.stderr.end());
            if (timedOut) return;
            const { code: exitCode } = exit;
            const r: ExecResult = { argv, exitCode, signal: exit.signal, stdout: '', stderr: tail.join('\n'), durationMs: now() - start };
            if (!exit.seen) {
              const why = this.lastDisconnect ?? 'channel closed without exit status';
              end(() => sub.error(new ConnectionLostError(this.name, `${this.name}: \`${showArgv(argv)}\` lost: ${why}`)));
            } else if (exitCode === 0 || (exitCode !== null && opts.okExitCodes?.includes(exitCode))) end(() => sub.complete());
            else end(() => sub.error(new CommandFailedError(this.name, r)));
          });
          if (opts.input) {
            inputSub = opts.input.subscribe({
              next: (d) => ch.write(d),
              complete: () => ch.end(),
              error: () => ch.end(),
            });
          } else ch.end();
        })
        .catch((e: Error) => end(() => sub.error(e)));

      return () => {
        if (ended || exited) {
          end(() => undefined);
          return;
        }
        const ch = channel;
        end(() => undefined);
        this.halt(ch, () => target, () => exited);
      };
    });
  }

  /** Stops a running command in the background; settle() waits for it. stdout and stderr are
   *  separate streams, so a line can arrive before the wrapper's marker: wait for the marker. */
  private halt(ch: ClientChannel | undefined, target: Target | (() => Target | undefined) | undefined, exited: () => boolean): void {
    const get = typeof target === 'function' ? target : () => target;
    const p = (async () => {
      const deadline = now() + 2000;
      while (!get() && !exited() && now() < deadline) await sleep(20);
      const t = get();
      if (t) await this.stop(t, 2000, exited);
    })().finally(() => ch?.close());
    this.track(p);
  }

  private track(p: Promise<unknown>): void {
    this.pending.add(p);
    void p.catch(() => undefined).finally(() => this.pending.delete(p));
  }

  async settle(): Promise<void> {
    while (this.pending.size) await Promise.allSettled([...this.pending]);
  }

  /** Drops the TCP connection without closing the node (tests, and recovery from a wedged session). */
  /** Drops the connection now (e.g. the guest was reset): the next command opens a new one.
   *  end() alone would wait for a FIN that a reset guest never sends, and meanwhile every exec on
   *  the old client fails with "Not connected". */
  disconnect(): void {
    this.down = undefined;
    const c = this.client;
    this.client = undefined;
    c?.destroy();
  }

  /**
   * The node is down (VM lab: its console shows a kernel crash and it did not answer): waiting out
   * each command's timeout on it would only delay the reset that comes anyway — a crashed node's
   * teardown took 144 s of timeouts in one full run. What runs on it fails now, what comes fails at
   * once, until disconnect() (the guest is reset).
   */
  markDown(why: string): void {
    this.lastDisconnect = why;
    this.disconnect();
    this.down = why;
  }

  private downError(argv: readonly string[]): NodeDownError {
    return new NodeDownError(this.name, `${this.name}: \`${showArgv(argv)}\` not run: ${this.down}`);
  }

  async close(): Promise<void> {
    await this.settle();
    this.closed = true;
    const c = this.client;
    this.client = undefined;
    if (c) {
      await new Promise<void>((res) => {
        c.once('close', () => res());
        c.end();
        setTimeout(res, 2000).unref();
      });
    }
  }
}
