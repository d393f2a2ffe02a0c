// A test body that has stopped (its deadline passed, Ctrl-C, the lab broke under it) cannot be
// killed: a promise runs on, and a set-up polling a node would go on acting into the next test
// (measured: a stopped RF-04 iSER set-up logged in during RF-05's). So the body runs behind a gate:
// AsyncLocalStorage carries it into every command the body starts, however deep. Once the gate
// closes, a new command from the body is refused and one in flight is stopped as at its timeout.
// Streams already running are left to the teardown that owns them. The attempt's teardown, the
// session's monitors and everything else run outside any gate.
import { AsyncLocalStorage } from 'node:async_hooks';
import { showArgv } from './argv.ts';
import { NodeError } from './node.ts';

/** A command refused, or stopped in flight, because the test body that started it has stopped. */
export class CommandRefusedError extends NodeError {
  override name = 'CommandRefusedError';
}

/** Stops one command in flight; resolves once it has ended. */
type Stopper = (why: string) => Promise<void>;

export class CommandGate {
  private why: string | undefined;
  private readonly inflight = new Set<Stopper>();
  private stopping: Promise<void> | undefined;

  /** Runs fn with every command it starts, at any depth, behind this gate. */
  run<T>(fn: () => T): T {
    return storage.run(this, fn);
  }

  get closed(): string | undefined {
    return this.why;
  }

  /** Closes the gate: refuses what comes, stops what is in flight (see stopped()). */
  close(why: string): void {
    if (this.why) return;
    this.why = why;
    this.stopping = Promise.all([...this.inflight].map((s) => s(why).catch(() => undefined))).then(() => undefined);
  }

  /** Resolves once the commands in flight at the close have ended (each stop is bounded). */
  stopped(): Promise<void> {
    return this.stopping ?? Promise.resolve();
  }

  /** How many commands are in flight behind this gate (for tests). */
  get size(): number {
    return this.inflight.size;
  }

  /** @internal see admit() */
  enter(stop: Stopper): () => void {
    this.inflight.add(stop);
    return () => void this.inflight.delete(stop);
  }
}

const storage = new AsyncLocalStorage<CommandGate>();

/** Runs fn outside any gate: what it starts serves more than the test that happens to start it
 *  (the lab session's monitors) and must outlive that test's stop. */
export function outsideGates<T>(fn: () => T): T {
  return storage.exit(fn);
}

/**
 * A node calls this as a command starts. Returns the error to fail it with when the caller's gate is
 * closed; otherwise registers `stop` (called if the gate closes while the command runs) and returns
 * the release to call when it ends.
 */
export function admit(node: string, argv: readonly string[], stop: Stopper): { refused: CommandRefusedError } | { release: () => void } {
  const gate = storage.getStore();
  if (!gate) return { release: () => undefined };
  if (gate.closed) return { refused: refusal(node, argv, gate.closed) };
  return { release: gate.enter(stop) };
}

/** Why the gate of the code running now has closed; undefined outside a gate or while it is open. */
export function closedGate(): string | undefined {
  return storage.getStore()?.closed;
}

/** Streams are not stopped in flight (their owner's teardown ends them), only refused. */
export function refusedStream(node: string, argv: readonly string[]): CommandRefusedError | undefined {
  const why = closedGate();
  return why ? refusal(node, argv, why) : undefined;
}

export function refusal(node: string, argv: readonly string[], why: string, inFlight = false): CommandRefusedError {
  return new CommandRefusedError(node, `${node}: \`${showArgv(argv)}\` ${inFlight ? 'stopped' : 'not run'}: the test that started it has stopped (${why})`);
}
