// A lab of real machines: nodes reached as the topology says; carrier loss through the topology's
// commands (a switch port, a PDU, ibportstate), run on the controller or on a named node.
import { LocalNode } from '../node/local.ts';
import { nodeFromAccess } from '../node/factory.ts';
import type { Node } from '../node/node.ts';
import type { LoadedTopology } from '../topology/load.ts';
import type { SlaveSpec } from '../topology/schema.ts';
import { BaseLab, type CarrierControl } from './lab.ts';

export class RealLab extends BaseLab {
  readonly kind = 'real' as const;
  readonly carrier: CarrierControl;
  readonly switchPorts = undefined;
  readonly machines = undefined;
  private readonly controller = new LocalNode('controller');

  constructor(loaded: LoadedTopology) {
    const nodes = new Map<string, Node>();
    for (const n of loaded.topology.nodes) {
      if (!n.access) throw new Error(`node ${n.name} has no access section`);
      nodes.set(n.name, nodeFromAccess(n.name, n.access, loaded.file));
    }
    super(loaded, nodes);
    this.carrier = {
      method: 'topology carrier commands',
      cut: (node, ifname) => this.carrierCommand(node, ifname, 'down'),
      restore: (node, ifname) => this.carrierCommand(node, ifname, 'up'),
    };
  }

  private slave(node: string, ifname: string): SlaveSpec {
    for (const b of this.spec(node).bonds ?? []) {
      const s = b.slaves.find((x) => x.name === ifname);
      if (s) return s;
    }
    throw new Error(`node ${node} has no bond slave ${ifname}`);
  }

  private async carrierCommand(node: string, ifname: string, dir: 'down' | 'up'): Promise<void> {
    const s = this.slave(node, ifname);
    if (!s.carrier) {
      throw new Error(`no carrier commands for ${node}/${ifname} in the topology: a real carrier loss needs them (admin-down is a different fault)`);
    }
    const runner = s.carrier.node ? this.node(s.carrier.node) : this.controller;
    await runner.run(s.carrier[dir], { timeoutMs: 30_000 });
  }

  override async close(): Promise<void> {
    await super.close();
    await this.controller.close();
  }
}
