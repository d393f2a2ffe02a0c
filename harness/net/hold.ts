// A held handshake: the client's bond drops the RoCEv2 frames (UDP 4791) its peer sends it, so a
// connect's CM reply is lost as on a wire. RF-04 holds the replies while it cuts the client's link:
// the failover then lands inside the CM handshake every time, not when the timing of the guests
// happens to put it there. Dropped on the client's ingress, not the server's egress: a local drop
// is an error to the sender (6.1's rxe requeues the send and spins; since 6.10 it errors the QP).
import type { Node } from '../node/node.ts';

/** Our filter's preference on the bond's ingress: one number the harness owns (RoCEv2's port). */
export const HOLD_PREF = 4791;

interface TcEntry {
  kind?: string;
  pref?: number;
}

function parse(json: string): TcEntry[] {
  const t = json.trim();
  return t ? (JSON.parse(t) as TcEntry[]) : [];
}

export async function hasClsact(node: Node, dev: string): Promise<boolean> {
  const r = await node.run(['tc', '-j', 'qdisc', 'show', 'dev', dev], { timeoutMs: 10_000 });
  return parse(r.stdout).some((q) => q.kind === 'clsact');
}

async function ingressPrefs(node: Node, dev: string): Promise<number[]> {
  const r = await node.run(['tc', '-j', 'filter', 'show', 'dev', dev, 'ingress'], { timeoutMs: 10_000 });
  return [...new Set(parse(r.stdout).flatMap((f) => (f.pref === undefined ? [] : [f.pref])))];
}

/**
 * Drops, on `dev`'s ingress, RoCEv2 frames from `peerIp`. `addQdisc`: the clsact qdisc is not there
 * yet and is ours to add (and to remove on release). A filter already at our preference is a
 * leftover of ours; it is replaced rather than doubled.
 */
export async function hold(node: Node, dev: string, peerIp: string, addQdisc: boolean): Promise<void> {
  if (addQdisc) await node.run(['tc', 'qdisc', 'add', 'dev', dev, 'clsact'], { timeoutMs: 10_000 });
  else if ((await ingressPrefs(node, dev)).includes(HOLD_PREF)) await node.run(['tc', 'filter', 'del', 'dev', dev, 'ingress', 'pref', String(HOLD_PREF)], { timeoutMs: 10_000 });
  // prettier-ignore
  await node.run(['tc', 'filter', 'add', 'dev', dev, 'ingress', 'protocol', 'ip', 'pref', String(HOLD_PREF), 'u32',
    'match', 'ip', 'protocol', '17', '0xff', 'match', 'ip', 'dport', '4791', '0xffff', 'match', 'ip', 'src', `${peerIp}/32`, 'action', 'drop'], { timeoutMs: 10_000 });
}

/**
 * Removes our filter when it is there (a rebooted node has none), and the clsact qdisc when we
 * added it and nothing else has been attached to it since.
 */
export async function release(node: Node, dev: string, qdiscAdded: boolean): Promise<void> {
  const q = await node.exec(['tc', '-j', 'qdisc', 'show', 'dev', dev], { timeoutMs: 10_000 });
  if (q.exitCode !== 0) {
    // no such device (the fabric was rebuilt): nothing of ours is left; anything else is an error
    const exists = (await node.exec(['test', '-e', `/sys/class/net/${dev}`], { timeoutMs: 10_000 })).exitCode === 0;
    if (exists) throw new Error(`tc qdisc show dev ${dev}: ${q.stderr.trim()}`);
    return;
  }
  // no clsact (the node rebooted): nothing of ours is left
  if (!parse(q.stdout).some((x) => x.kind === 'clsact')) return;
  const prefs = await ingressPrefs(node, dev);
  if (prefs.includes(HOLD_PREF)) await node.run(['tc', 'filter', 'del', 'dev', dev, 'ingress', 'pref', String(HOLD_PREF)], { timeoutMs: 10_000 });
  if (!qdiscAdded) return;
  const others = prefs.filter((p) => p !== HOLD_PREF).length;
  const egress = parse((await node.run(['tc', '-j', 'filter', 'show', 'dev', dev, 'egress'], { timeoutMs: 10_000 })).stdout).length;
  if (others === 0 && egress === 0) await node.run(['tc', 'qdisc', 'del', 'dev', dev, 'clsact'], { timeoutMs: 10_000 });
}
