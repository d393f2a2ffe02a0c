// The lab's private network: a network namespace that holds one bridge per switch, joined by an
// inter-switch link (a veth pair), and one tap per guest NIC. Lab traffic never touches the host's
// own interfaces. Taps are created in the host namespace (QEMU opens them there), then moved in.
import type { Node } from '../node/node.ts';

export interface SwitchPort {
  tap: string;
  switch: string;
}

export function bridgeName(sw: string): string {
  return `sw-${sw}`.slice(0, 15);
}

export async function createFabric(host: Node, netns: string, switches: readonly string[]): Promise<void> {
  await host.run(['ip', 'netns', 'add', netns]);
  const ip = (...args: string[]) => host.run(['ip', '-n', netns, ...args]);
  await ip('link', 'set', 'lo', 'up');
  for (const sw of switches) {
    const br = bridgeName(sw);
    // No STP (no loops: bonds do not bridge) and no multicast snooping (IPoIB-like flooding of ARP).
    await ip('link', 'add', br, 'type', 'bridge', 'stp_state', '0', 'mcast_snooping', '0', 'forward_delay', '0');
    await ip('link', 'set', br, 'up');
  }
  // Inter-switch links chain the switches so a node on A reaches a node that failed over to B.
  for (let i = 0; i + 1 < switches.length; i++) {
    const a = `isl${i}a`;
    const b = `isl${i}b`;
    await ip('link', 'add', a, 'type', 'veth', 'peer', 'name', b);
    await ip('link', 'set', a, 'master', bridgeName(switches[i]!), 'up');
    await ip('link', 'set', b, 'master', bridgeName(switches[i + 1]!), 'up');
  }
}

export async function createTap(host: Node, tap: string): Promise<void> {
  await host.run(['ip', 'tuntap', 'add', 'dev', tap, 'mode', 'tap']);
}

/** After QEMU opened the tap: move it into the lab namespace and plug it into its switch. */
export async function plugTap(host: Node, netns: string, port: SwitchPort): Promise<void> {
  await host.run(['ip', 'link', 'set', port.tap, 'netns', netns]);
  await host.run(['ip', '-n', netns, 'link', 'set', port.tap, 'master', bridgeName(port.switch), 'up']);
}

/** A switch port down: frames stop, the guest's carrier stays up (a silent path loss). */
export async function setSwitchPort(host: Node, netns: string, tap: string, up: boolean): Promise<void> {
  await host.run(['ip', '-n', netns, 'link', 'set', tap, up ? 'up' : 'down']);
}

export async function netnsExists(host: Node, netns: string): Promise<boolean> {
  const r = await host.exec(['ip', '-j', 'netns', 'list']);
  if (r.exitCode !== 0 || !r.stdout.trim()) return false;
  return (JSON.parse(r.stdout) as { name: string }[]).some((n) => n.name === netns);
}

/** Deleting the namespace destroys its bridges, veths and taps. */
export async function destroyFabric(host: Node, netns: string, strayTaps: readonly string[]): Promise<void> {
  if (await netnsExists(host, netns)) await host.run(['ip', 'netns', 'delete', netns]);
  // Taps not yet moved (a run killed during boot) are still in the host namespace.
  const r = await host.exec(['ip', '-j', 'link', 'show', 'type', 'tun']);
  const present = r.exitCode === 0 && r.stdout.trim() ? (JSON.parse(r.stdout) as { ifname: string }[]).map((l) => l.ifname) : [];
  for (const tap of strayTaps) if (present.includes(tap)) await host.exec(['ip', 'link', 'delete', tap]);
}
