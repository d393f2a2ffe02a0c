// A lab of real machines: nodes reached as the topology says; carrier loss through the topology's
// commands (a switch port, a PDU, ibportstate), run on the controller or on a named node.
import { LocalNode } from '../node/local.ts';
import { nodeFromAccess } from '../node/factory.ts';
import type { Node } from '../node/node.ts';
import type { LoadedTopology } from '../topology/load.ts';
import type { SlaveSpec } from '../topology/schema.ts';
import { registerSecret } from '../secrets.ts';
import { showArgv } from '../node/argv.ts';
import { BaseLab, type CarrierControl } from './lab.ts';

/** A command argument: a plain string, or a secret taken from the controller's environment. */
export type CommandArg = string | { env: string };

function resolveArg(a: CommandArg, where: string): string {
  if (typeof a === 'string') return a;
  const v = process.env[a.env];
  if (v === undefined || v === '') throw new Error(`the carrier command of ${where} needs the environment variable ${a.env} (a secret argument the topology does not hold): set it for the run`);
  registerSecret(v);
  return v;
}

/** A command for people: secret arguments shown by name ($NAME), never by value. */
export function showCommand(argv: readonly CommandArg[]): string {
  return showArgv(argv.map((a) => (typeof a === 'string' ? a : `$${a.env}`)));
}

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
    // Secret arguments are resolved now: a missing one is reported before anything is touched,
    // and every value is masked in all output from here on.
    for (const n of loaded.topology.nodes) for (const b of n.bonds ?? []) for (const s of b.slaves) if (s.carrier) for (const a of [...s.carrier.down, ...s.carrier.up]) resolveArg(a, `${n.name}/${s.name}`);
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
    await runner.run(s.carrier[dir].map((a) => resolveArg(a, `${node}/${ifname}`)), { timeoutMs: 30_000 });
  }

  override async close(): Promise<void> {
    await super.close();
    await this.controller.close();
  }
}
