// A lab: the machines of a topology, reachable as Nodes, plus the powers this kind of lab has.
// Suites and faults ask for capabilities (carrier control, switch ports, pause, reboot), never
// for a particular kind of lab: the VM lab and a real IPoIB lab are interchangeable underneath.
import type { Node } from '../node/node.ts';
import type { LoadedTopology } from '../topology/load.ts';
import type { TopologyNode } from '../topology/schema.ts';
import { processJournal } from './processes.ts';

/** Cuts and restores the carrier of a node's NIC: what a pulled cable or a dead switch port does. */
export interface CarrierControl {
  /** e.g. "QEMU set_link" or "topology carrier commands" */
  readonly method: string;
  cut(node: string, ifname: string): Promise<void>;
  restore(node: string, ifname: string): Promise<void>;
  /** Cuts several links of a node at one instant (one command), where the lab can. */
  cutTogether?(node: string, ifnames: readonly string[]): Promise<void>;
}

/** Takes a switch port down without the node's carrier noticing: a silent path loss. */
export interface SwitchPortControl {
  down(node: string, ifname: string): Promise<void>;
  up(node: string, ifname: string): Promise<void>;
}

/** Whole-machine powers of a virtual lab. */
export interface MachineControl {
  /** Freezes the machine (QMP stop): it stops answering, like a hung kernel. */
  pause(node: string): Promise<void>;
  resume(node: string): Promise<void>;
  /** Power-cycles the machine and waits until it answers again. */
  reboot(node: string): Promise<void>;
  /** The machine's console output so far (kernel log even if the kernel died). */
  console(node: string, maxBytes?: number): Promise<string>;
  /** Bytes of console output so far, and the output after such a mark. */
  consoleMark(node: string): number;
  consoleSince(node: string, mark: number, maxBytes?: number): string;
}

export interface Lab {
  readonly loaded: LoadedTopology;
  readonly kind: 'real' | 'vm';
  readonly nodes: ReadonlyMap<string, Node>;
  node(name: string): Node;
  spec(name: string): TopologyNode;
  readonly carrier: CarrierControl | undefined;
  readonly switchPorts: SwitchPortControl | undefined;
  readonly machines: MachineControl | undefined;
  close(): Promise<void>;
}

export abstract class BaseLab implements Lab {
  abstract readonly kind: 'real' | 'vm';
  abstract readonly carrier: CarrierControl | undefined;
  abstract readonly switchPorts: SwitchPortControl | undefined;
  abstract readonly machines: MachineControl | undefined;
  readonly loaded: LoadedTopology;
  readonly nodes: Map<string, Node>;

  constructor(loaded: LoadedTopology, nodes: Map<string, Node>) {
    this.loaded = loaded;
    this.nodes = nodes;
    // Every long-running command on a lab node is journaled while it runs (see processes.ts).
    const hooks = processJournal(loaded.topology.name);
    for (const n of nodes.values()) n.processHooks = hooks;
  }

  node(name: string): Node {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`no node "${name}" in lab ${this.loaded.topology.name} (nodes: ${[...this.nodes.keys()].join(', ')})`);
    return n;
  }

  spec(name: string): TopologyNode {
    const n = this.loaded.topology.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node "${name}" in topology ${this.loaded.topology.name}`);
    return n;
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.nodes.values()].map((n) => n.close()));
  }
}
