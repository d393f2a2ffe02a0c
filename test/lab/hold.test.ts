// RF-04's held handshake (harness/net/hold.ts), for real on the VM lab: while held, a connect from
// the held node cannot complete (its peer's replies are dropped, and counted, on its bond), and it
// completes after the release; the bond's tc objects are left as found, the user's own among them;
// a hold a killed run left behind is released by the next run's journal replay.
import { expect } from 'chai';
import { suite, test, type TestContext } from '../../harness/fixture/test.ts';
import { HeldReplies, replayHealJournal } from '../../harness/fault/fault.ts';
import { HOLD_PREF } from '../../harness/net/hold.ts';
import { rpingOnce } from '../../harness/smoke.ts';

interface TcFilter {
  pref?: number;
  options?: { actions?: { stats?: { packets?: number } }[] };
}

/** The bond's qdiscs and ingress filters, as tc prints them (JSON): compared before and after. */
async function tcState(t: TestContext, node: string, dev: string): Promise<string> {
  const r = await t.node(node).run(['sh', '-c', 'tc -j qdisc show dev "$1"; tc -j filter show dev "$1" ingress 2>/dev/null; true', 'tcstate', dev]);
  return r.stdout;
}

/** Frames our filter dropped so far (its drop action's counter). */
async function dropped(t: TestContext, node: string, dev: string): Promise<number> {
  const r = await t.node(node).run(['tc', '-s', '-j', 'filter', 'show', 'dev', dev, 'ingress', 'pref', String(HOLD_PREF)]);
  const f = (JSON.parse(r.stdout || '[]') as TcFilter[]).flatMap((x) => x.options?.actions ?? []);
  return f.reduce((n, a) => n + (a.stats?.packets ?? 0), 0);
}

/**
 * Can an RDMA CM connect from a to b complete now? rping as server on b, client on a; true when a ping
 * went through, false when the client waited for a reply that never came (its timeout, exit 124).
 */
async function connects(t: TestContext, a: string, b: string, port: number): Promise<boolean> {
  const ip = t.bondOf(b).ip;
  const srv = t.node(b).exec(['timeout', '10', 'rping', '-s', '-a', ip, '-p', String(port), '-C', '1'], { timeoutMs: 20_000 });
  let out = '';
  for (let i = 0; i < 10 && !/ping data/.test(out); i++) {
    // rping has no "listening" signal; a connect refused before the server listens is retried
    const r = await t.node(a).exec(['timeout', '4', 'rping', '-c', '-a', ip, '-p', String(port), '-C', '1', '-v'], { timeoutMs: 10_000 });
    out = r.stdout + r.stderr;
    if (r.exitCode === 124) break; // waited for a reply that never came: held
  }
  await srv;
  return /ping data/.test(out);
}

suite('a held handshake: the replies a node gets over RoCEv2 held on its bond (VM lab)', { requires: { nodes: 2, tools: ['rping'] } }, () => {
  test('while held, an RDMA CM connect from the node cannot complete and the peer\'s frames are dropped; after the release it connects', async (t) => {
    const [a, b] = t.pair();
    const dev = t.bondOf(a).name;
    const release = await t.holdReplies(a, b);
    expect(release, 'an rxe bond can be held').to.not.equal(undefined);
    expect(await connects(t, a, b, 7191), 'no ping while the replies are held').to.equal(false);
    expect(await dropped(t, a, dev), "the peer's frames dropped on the held bond").to.be.greaterThan(0);
    await release!();
    const after = await rpingOnce(t.node(a), t.node(b), t.bondOf(b).ip, 3, 7192);
    expect(after.ok, `connect after the release:\n${after.output}`).to.equal(true);
  });

  // The check above is not vacuous: a hold that matches the wrong source lets the handshake through,
  // and the same check says so (and its filter counts nothing).
  test('a broken hold (matching a source that is not the peer) holds nothing: the check sees the ping', async (t) => {
    const [a, b] = t.pair();
    const dev = t.bondOf(a).name;
    const wrong = new HeldReplies(a, dev, '192.0.2.1'); // TEST-NET-1: no such peer, no traffic to it
    t.scope.defer('release the broken hold', () => wrong.release(t.lab));
    await wrong.hold(t.lab);
    expect(await connects(t, a, b, 7193), 'the ping goes through a hold on the wrong source').to.equal(true);
    expect(await dropped(t, a, dev), 'nothing dropped').to.equal(0);
    await wrong.release(t.lab);
  });

  test("the release leaves the bond's tc objects as found: none, or the user's own qdisc and filter", async (t) => {
    const [a, b] = t.pair();
    const dev = t.bondOf(a).name;
    const bare = await tcState(t, a, dev);
    const r1 = await t.holdReplies(a, b);
    expect(await tcState(t, a, dev), 'held').to.not.equal(bare);
    await r1!();
    expect(await tcState(t, a, dev), 'released: no qdisc of ours left').to.equal(bare);
    // the user's own clsact and ingress filter, planted first
    const n = t.node(a);
    await n.run(['tc', 'qdisc', 'add', 'dev', dev, 'clsact']);
    t.scope.defer("remove the user's planted clsact", async () => void (await n.exec(['tc', 'qdisc', 'del', 'dev', dev, 'clsact'])));
    await n.run(['tc', 'filter', 'add', 'dev', dev, 'ingress', 'protocol', 'ip', 'pref', '100', 'u32', 'match', 'ip', 'dport', '9', '0xffff', 'action', 'pass']);
    const users = await tcState(t, a, dev);
    const r2 = await t.holdReplies(a, b);
    const during = await tcState(t, a, dev);
    expect(during, "the user's filter stays while held").to.match(/"pref":100/);
    expect(during, 'and ours is there').to.match(new RegExp(`"pref":${HOLD_PREF}`));
    await r2!();
    expect(await tcState(t, a, dev), "released: the user's qdisc and filter as planted").to.equal(users);
  });

  test("a hold left by a killed run is released by the next run's journal replay", async (t) => {
    const [a, b] = t.pair();
    const dev = t.bondOf(a).name;
    const bare = await tcState(t, a, dev);
    // held, and never released by its owner: a killed run
    await new HeldReplies(a, dev, t.bondOf(b).ip).hold(t.lab);
    expect(await tcState(t, a, dev)).to.not.equal(bare);
    const done = await replayHealJournal(t.lab);
    expect(done).to.deep.equal([`hold-release ${a}/${dev}`]);
    expect(await tcState(t, a, dev)).to.equal(bare);
  });
});
