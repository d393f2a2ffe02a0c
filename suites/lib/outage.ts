// RF-03's outage of both links, with the two things that decided its kernel path pinned by the
// harness. Traced in full runs (Debian 6.1, VM lab), each varied from run to run by chance:
//
// - Which slave the bond was on. After the heal the bond always takes its first slave (restored
//   first, first in its list: bond_find_best_slave). Left on the other one by an earlier test, the
//   heal was also a failover — a new address, ADDR_CHANGE, and iSER reconnected cleanly (PASS);
//   on the first one, no address change.
// - Whether the node sent anything to the peer during the outage. The carrier loss flushes the
//   peer's neighbour entry; a packet to the peer during the outage makes a new, unresolved one.
//   The bond's new active slave at the heal (NETDEV_CHANGEADDR, sent even when the address is the
//   same: bond_set_dev_addr) flushes it again, and the RDMA CM reports UNREACHABLE to every id
//   whose peer address differs from the entry's (none): cma_netevent_callback. With no packet
//   there is no entry and no UNREACHABLE; iSER's own traffic sent one in some runs, not in others
//   (none in 3.3 s in one, a retransmission or NOP-Out in another).
//
// So the bond starts on the slave it comes back on, and the client looks the peer up once during
// the outage (one ping), as any traffic would. The outage is then the same every run: the heal is
// not a failover, and UNREACHABLE reaches the connection.
import { BothDown } from '../../harness/fault/fault.ts';
import { sysfsBond } from '../../harness/fabric/fabric.ts';
import type { TestContext } from '../../harness/fixture/test.ts';
import { kernelMark, markKernelLog } from '../../harness/health/health.ts';
import type { FaultRef } from '../../harness/timeline/timeline.ts';
import { now, sleep } from '../../harness/clock.ts';
import type { FaultEvent, KmsgEvent, LabEvent } from '../../harness/monitor/events.ts';

/** Before the workload starts: the node's bond on the slave it returns to after an outage (its first). */
export async function onReturnSlave(t: TestContext, node: string): Promise<void> {
  const b = await t.bond(node);
  const first = b.slaves[0];
  if (!first || b.activeSlave === first) return;
  await t.step(`${node}/${b.name} on ${first}, the slave it comes back on after the outage`, () => t.node(node).writeFile(sysfsBond(b.name, 'active_slave'), `${first}\n`));
}

/**
 * What the node's kernel log (events from the cut to the heal) says went wrong with an outage meant
 * to take all of a bond's slaves at once: a failover before the last one went, or no moment without
 * an active slave. Empty when the outage was the one RF-03 specifies.
 */
export function notAtOnce(during: readonly LabEvent[], node: string): string[] {
  const kmsg = during.filter((e): e is KmsgEvent => e.source === 'kmsg' && e.node === node);
  const problems: string[] = [];
  const failover = kmsg.find((e) => /making interface the new active one/.test(e.text));
  if (failover) problems.push(`the bond failed over before it lost both slaves: ${failover.text}`);
  if (!kmsg.some((e) => /now running without any active interface/.test(e.text))) problems.push('the bond never saw both slaves go');
  return problems;
}

/**
 * The node's kernel log lines of one outage: after its cut mark, before its heal mark, in the
 * kernel's own order. Undefined when a mark is missing (the stream lost it): then the caller falls
 * back on the controller's clock.
 */
export function outageLines(events: readonly LabEvent[], node: string, id: string): KmsgEvent[] | undefined {
  const kmsg = events.filter((e): e is KmsgEvent => e.source === 'kmsg' && e.node === node);
  const cut = kmsg.find((e) => e.text === outageMark(id, 'cut'));
  const heal = kmsg.find((e) => e.text === outageMark(id, 'heal'));
  if (!cut || !heal) return undefined;
  return kmsg.filter((e) => e.kernelTs > cut.kernelTs && e.kernelTs < heal.kernelTs);
}

/** The tag of an outage's mark (markKernelLog's). */
export function outageTag(id: string, what: 'cut' | 'heal'): string {
  return `outage ${id} ${what}`;
}

/** The kernel log line of an outage's mark. */
export function outageMark(id: string, what: 'cut' | 'heal'): string {
  return kernelMark(outageTag(id, what));
}

let outages = 0;

/** Both links of the client's bond down, the peer looked up once meanwhile; returns once healed. */
export async function bothLinksDown(t: TestContext, client: string, server: string, downMs: number, during?: (ref: FaultRef) => Promise<void>): Promise<{ ref: FaultRef; both: BothDown }> {
  const bond = await t.bond(client);
  const both = new BothDown(client, bond.name, bond.slaves, downMs);
  // Whether the bond failed over before it lost both slaves is read from the node's kernel log,
  // between two lines the harness writes there: in the kernel's order, no clock mapping involved.
  // (The heal's own "new active one" line comes 2–100 ms after the links return: a window on the
  // controller's clock would rest on the clocks agreeing within that.)
  const id = `${process.pid}-${++outages}`;
  await markKernelLog(t.node(client), outageTag(id, 'cut'));
  const ref = await t.inject(both);
  // One echo request: its ARP resolution makes the unresolved neighbour entry (it fails: no carrier).
  await t.step(`${client} looks ${server} up during the outage (one ping)`, () =>
    t.node(client).exec(['ping', '-n', '-q', '-c', '1', '-W', '1', '-I', bond.name, t.bondOf(server).ip], { timeoutMs: 5000 }),
  );
  await during?.(ref);
  // The harness's clock, now(), as every event's t. Date.now() here (until 3719d24) is the wall
  // clock, which can drift or be stepped away from it over a long run.
  await sleep(Math.max(0, ref.t + downMs - now()));
  const healCalled = now();
  await t.heal(both, { mark: { node: client, tag: outageTag(id, 'heal') } });
  const all = (await t.evidenceSettled()).events;
  const healAt = all.find((e): e is FaultEvent => e.source === 'fault' && e.kind === 'heal' && e.fault === both.kind && e.node === client && e.t >= healCalled)?.t ?? healCalled;
  // A test on another path than the one specified is no verdict on it, least of all a PASS (a
  // failover on the way down is a clean ADDR_CHANGE reconnect for iSER).
  const seen = outageLines(all, client, id) ?? all.filter((e) => e.t >= ref.t && e.t < healCalled);
  const problems = notAtOnce(seen, client);
  if (problems.length) throw new Error(`the outage was not the one under test (both links of ${client}/${bond.name} lost at once): ${problems.join('; ')} [${bondLog(all, client, ref.t, healAt)}]`);
  return { ref, both };
}

/** The node's bond lines around an outage, in ms from the cut (the heal at +healMs): what a refused
 *  outage is diagnosed from. */
export function bondLog(events: readonly LabEvent[], node: string, cutAt: number, healAt: number): string {
  const lines = events
    .filter((e): e is KmsgEvent => e.source === 'kmsg' && e.node === node && /bond|slave/.test(e.text) && e.t >= cutAt - 2000 && e.t < healAt + 2000)
    .map((e) => `${(e.t - cutAt).toFixed(1)} ms [${e.kernelTs.toFixed(6)}] ${e.text}`);
  return `heal at +${(healAt - cutAt).toFixed(1)} ms; kernel log: ${lines.join(' | ') || 'none'}`;
}
