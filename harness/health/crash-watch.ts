// VM lab, during a test's body: a node whose kernel crashes, and that then stops answering, is
// marked down at once. Without it, the body only learnt of the crash through its own commands:
// the one in flight until SSH's keepalive gave up, each later one through a 20 s handshake timeout,
// and a step polling for I/O to resume through its whole bound.
import type { MachineControl } from '../lab/lab.ts';
import type { Node } from '../node/node.ts';
import { crashSummary, downAfterCrash } from './health.ts';

export interface CrashWatchOptions {
  /** How often the consoles are read (a file read each; nothing reaches the guests). */
  everyMs?: number;
  /** Wraps each probe of a crashed node (the test records it as harness time). */
  probe?: (node: Node, consoleText: () => string) => Promise<string | undefined>;
}

export class CrashWatch {
  /** The nodes marked down, and why. */
  readonly down = new Map<string, string>();
  private readonly marks: ReadonlyMap<string, number>;
  /** Where a crash counts from: the test's mark, or the end of an oops the node answered through. */
  private readonly from: Map<string, number>;
  private readonly sizes = new Map<string, number>();
  private readonly timer: NodeJS.Timeout;
  private tick: Promise<void> | undefined;
  private readonly probe: (node: Node, consoleText: () => string) => Promise<string | undefined>;
  private readonly nodes: readonly Node[];
  private readonly machines: MachineControl;

  /** `marks`: each node's console offset at the test's start (only what the test's time printed counts). */
  constructor(nodes: readonly Node[], machines: MachineControl, marks: ReadonlyMap<string, number>, opts: CrashWatchOptions = {}) {
    this.nodes = nodes;
    this.machines = machines;
    this.marks = marks;
    this.from = new Map(marks);
    this.probe = opts.probe ?? ((n, text) => downAfterCrash(n, text));
    this.timer = setInterval(() => {
      this.tick ??= this.check().finally(() => (this.tick = undefined));
    }, opts.everyMs ?? 1000);
    this.timer.unref();
  }

  /** Reads every console once: a node showing a crash since its mark is probed, and marked down when it does not answer. */
  async check(): Promise<void> {
    await Promise.all(
      this.nodes.map(async (n) => {
        if (this.down.has(n.name)) return;
        const size = this.machines.consoleMark(n.name);
        if (size === this.sizes.get(n.name)) return; // nothing printed since the last look
        this.sizes.set(n.name, size);
        // It oopsed in a worker and still answers: only a crash printed after this counts again.
        if ((await this.probeIfCrashed(n, this.from.get(n.name) ?? 0)) && !this.down.has(n.name)) this.from.set(n.name, size);
      }),
    );
  }

  /** Stops watching; waits for a probe under way (its verdict still counts, so no node is marked
   *  down after this returns). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.tick;
  }

  /**
   * After the body: stops watching, then asks once more every node not marked down whose console
   * shows a crash since the test's mark — one that answered through an oops may have died since,
   * printing nothing more — before the evidence is salvaged and the test torn down.
   */
  async finish(): Promise<void> {
    await this.stop();
    await Promise.all(this.nodes.filter((n) => !this.down.has(n.name)).map((n) => this.probeIfCrashed(n, this.marks.get(n.name) ?? 0)));
  }

  /** Probes a node whose console shows a crash since `from`, and marks it down when it does not
   *  answer. Whether there was a crash to probe for. */
  private async probeIfCrashed(n: Node, from: number): Promise<boolean> {
    const read = () => this.machines.consoleSince(n.name, from);
    if (!crashSummary(read().split('\n'))) return false;
    const why = await this.probe(n, read);
    if (why) {
      this.down.set(n.name, why);
      n.markDown?.(why);
    }
    return true;
  }
}
