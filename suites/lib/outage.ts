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
import type { FaultRef } from '../../harness/timeline/timeline.ts';
import { sleep } from '../../harness/clock.ts';

/** Before the workload starts: the node's bond on the slave it returns to after an outage (its first). */
export async function onReturnSlave(t: TestContext, node: string): Promise<void> {
  const b = await t.bond(node);
  const first = b.slaves[0];
  if (!first || b.activeSlave === first) return;
  await t.step(`${node}/${b.name} on ${first}, the slave it comes back on after the outage`, () => t.node(node).writeFile(sysfsBond(b.name, 'active_slave'), `${first}\n`));
}

/** Both links of the client's bond down, the peer looked up once meanwhile; returns once healed. */
export async function bothLinksDown(t: TestContext, client: string, server: string, downMs: number, during?: (ref: FaultRef) => Promise<void>): Promise<{ ref: FaultRef; both: BothDown }> {
  const bond = await t.bond(client);
  const both = new BothDown(client, bond.name, bond.slaves, downMs);
  const ref = await t.inject(both);
  // One echo request: its ARP resolution makes the unresolved neighbour entry (it fails: no carrier).
  await t.step(`${client} looks ${server} up during the outage (one ping)`, () =>
    t.node(client).exec(['ping', '-n', '-q', '-c', '1', '-W', '1', '-I', bond.name, t.bondOf(server).ip], { timeoutMs: 5000 }),
  );
  await during?.(ref);
  await sleep(Math.max(0, ref.t + downMs - Date.now()));
  await t.heal(both);
  return { ref, both };
}
