// RDMA CM event semantics on a bond failover (B. in the test plan).
import { suite, test, expect, type TestContext } from '../harness/fixture/test.ts';
import { CarrierLoss, Flap, ForcedSwitch } from '../harness/fault/fault.ts';
import { RpingWorkload, rpingClient } from '../harness/workload/rping.ts';
import { progressPast } from '../harness/workload/workload.ts';
import { failoverBudget } from '../harness/topology/defaults.ts';
import { now, sleep, waitFor } from '../harness/clock.ts';
import type { CmaEvent } from '../harness/monitor/events.ts';
import { newCmIds } from '../harness/assert/evidence.ts';
import { RdsWorkload } from '../harness/workload/rds.ts';
import type { Subscription } from 'rxjs';

/** A long-lived rping listener on `node` (persistent server): stopped by `stop()` or at teardown. */
async function rpingListener(t: TestContext, node: string, ip: string, port: number): Promise<{ stop: () => Promise<void> }> {
  let sub: Subscription | undefined;
  // What the listener said, and whether it ended before the teardown: a connect REJECTED with
  // reason 8 (invalid service ID) means nothing listened any more — this says why.
  const said: string[] = [];
  let ended: string | undefined;
  const stop = async (): Promise<void> => {
    if (!sub) return;
    if (ended) t.attach(`rping listener on ${node} ${ip}:${port} ${ended} before the teardown`, said.filter((l) => !/ping data:/.test(l)).slice(-40).join('\n') || '(no output)', 'text/plain');
    sub.unsubscribe();
    sub = undefined;
    await t.node(node).settle();
  };
  await t.scope.use(
    `rping listener ${node} ${ip}:${port}`,
    async () => {
      sub = t.node(node).stream(['rping', '-s', '-P', '-a', ip, '-p', String(port)], { timeoutMs: 30 * 60_000 }).subscribe({
        next: (l) => void (said.length < 200 && said.push(`${l.stream}: ${l.text}`)),
        error: (e: Error) => void (ended = `ended with an error: ${e.message}`),
        complete: () => void (ended = 'exited'),
      });
      await sleep(1500);
    },
    stop,
  );
  return { stop };
}

suite('RDMA CM events on a bond failover', { requires: { nodes: 2, tools: ['rping'], capabilities: ['carrier'] } }, () => {
  test('CM-01 ADDR_CHANGE goes to every cm_id bound to the bond, exactly once, and to no id on another netdev', async (t) => {
    const [client, server] = t.pair();
    const bond = t.bondOf(client);
    // Two connections over the bond, and a listener bound to the client's bond address.
    await t.monitor();
    const a = await t.workload('rping A', () => Promise.resolve(new RpingWorkload(t.lab, { client, server, port: 7301 })));
    const b = await t.workload('rping B', () => Promise.resolve(new RpingWorkload(t.lab, { client, server, port: 7302 })));
    await rpingListener(t, client, bond.ip, 7303);
    // In the VM lab, an RDMA device on the management NIC: its ids must not hear about bond0.
    let other: string | undefined;
    if (t.lab.kind === 'vm') {
      other = '10.0.2.15';
      await t.scope.use(
        'rxe on mgmt0',
        () => t.node(client).run(['rdma', 'link', 'add', 'rxe_mgmt', 'type', 'rxe', 'netdev', 'mgmt0']),
        () => t.node(client).run(['rdma', 'link', 'delete', 'rxe_mgmt']).then(() => undefined),
      );
      await rpingListener(t, client, other, 7304);
    }
    await t.step('two rping connections over the bond', async () => {
      await a.start();
      await b.start();
      await progressPast(a, a.done + 20, 20_000);
      await progressPast(b, b.done + 20, 20_000);
    });
    const active = await t.bond(client);
    await t.inject(new CarrierLoss(client, active.activeSlave));
    await t.step('the failover settles', () => sleep(3000));
    const ev = await t.evidence({ results: [await a.finish(), await b.finish()] });

    expect(ev).to.have.failedOverTo(active.backup).within(failoverBudget(t.topology));
    // Both connected ids and the listener on the bond address: exactly one each; nothing else.
    expect(ev).to.have.addrChangeDeliveredTo();
    const changes = ev.events.filter((e) => e.source === 'cma' && e.point === 'cm_event_handler' && e.event === 'ADDR_CHANGE' && e.node === client);
    expect(changes.length, 'connections A, B and the listener').to.equal(3);
    if (other) {
      const onOther = changes.filter((e) => e.source === 'cma' && e.src?.startsWith(`${other}:`));
      expect(onOther, 'ids on the management NIC').to.deep.equal([]);
    }
    const logLines = ev.events.filter((e) => e.source === 'kmsg' && e.node === client && e.cls === 'cma-addr-change');
    expect(logLines.length, 'kernel log: "RDMA CM addr change for ndev bond0 used by id …" per id').to.equal(3);
    expect(logLines.every((e) => e.source === 'kmsg' && e.text.includes(`ndev ${bond.name} `))).to.equal(true);
  });

  test('CM-02 no ADDR_CHANGE when the bond address does not change (fail_over_mac=none); records whether the QP survives', async (t) => {
    const [client, server] = t.pair();
    await t.fabricWith({ fail_over_mac: 'none' });
    const rping = await t.workload('rping', () => Promise.resolve(new RpingWorkload(t.lab, { client, server, port: 7310 })));
    await t.monitor();
    await t.step('rping connects and pings', () => rping.start());
    await t.step('pings flow', () => progressPast(rping, rping.done + 50, 20_000));
    const active = await t.bond(client);
    await t.inject(new CarrierLoss(client, active.activeSlave));
    const survived = await t.step('do pings continue on the same connection?', () =>
      progressPast(rping, rping.done + 50, 8000).then(
        () => true,
        () => false,
      ),
    );
    const ev = await t.evidence({ results: [await rping.finish()] });
    expect(ev).to.have.failedOverTo(active.backup);
    const tl = ev.timelines[0]!;
    expect(tl.phases.find((p) => p.id === 'bond_address')!.missing, 'the bond keeps its address').to.equal(true);
    const changes = ev.events.filter((e) => e.source === 'cma' && e.point === 'cm_event_handler' && e.event === 'ADDR_CHANGE');
    expect(changes, 'ADDR_CHANGE events').to.deep.equal([]);
    t.attach('CM-02 observation', { qpSurvived: survived, note: survived ? 'the established RC connection kept working through the new slave (same MAC, same GID)' : 'the established connection stalled without any CM event' });
    t.metric('QP survived failover (1 = yes)', survived ? 1 : 0, 'bool');
  });

  test('CM-06 a listener survives the failover: new connections are accepted through the new active slave', async (t) => {
    const [client, server] = t.pair();
    const sbond = t.bondOf(server);
    await rpingListener(t, server, sbond.ip, 7320);
    await t.monitor();
    const before = await t.step('a connection before the fault', () => rpingClient(t.lab, client, sbond.ip, 7320));
    expect(before.ok, before.output).to.equal(true);
    const active = await t.bond(server);
    await t.inject(new CarrierLoss(server, active.activeSlave));
    await t.step('the server bond fails over', () => waitFor('server failover', async () => ((await t.bond(server)).activeSlave === active.backup ? true : undefined), { timeoutMs: 10_000 }));
    const after = await t.step('a new connection after the fault', () => rpingClient(t.lab, client, sbond.ip, 7320));
    const ev = await t.evidence();
    expect(ev).to.have.failedOverTo(active.backup, { node: server });
    expect(after.ok, `new connection after the failover:\n${after.output}`).to.equal(true);
    const est = ev.events.filter((e) => e.source === 'cma' && e.node === server && e.event === 'ESTABLISHED' && e.t > ev.faults[0]!.t);
    expect(est.length, 'the listener accepted a connection after the fault').to.be.at.least(1);
    const activeThen = ev.events.filter((e) => e.source === 'bond' && e.node === server && e.t <= est[0]!.t).pop();
    expect(activeThen && activeThen.source === 'bond' ? activeThen.activeSlave : '', 'through the new active slave').to.equal(active.backup);
  });

  test('CM-01 a forced active_slave switch (no link fails) also delivers ADDR_CHANGE to every cm_id bound to the bond, exactly once', async (t) => {
    const [client, server] = t.pair();
    await t.monitor();
    const a = await t.workload('rping', () => Promise.resolve(new RpingWorkload(t.lab, { client, server, port: 7330 })));
    await t.step('an rping connection over the bond', async () => {
      await a.start();
      await progressPast(a, a.done + 20, 20_000);
    });
    const b = await t.bond(client);
    await t.inject(new ForcedSwitch(client, b.name, b.backup));
    await t.step('the switch settles', () => sleep(3000));
    const ev = await t.evidence({ results: [await a.finish()] });
    expect(ev).to.have.failedOverTo(b.backup).within(failoverBudget(t.topology));
    expect(ev).to.have.addrChangeDeliveredTo();
  });

  // How a connect attempt ends: connected (ESTABLISHED; a user-space active side sees
  // CONNECT_RESPONSE), the CM said why not, or the id went away.
  const ENDED = new Set(['ESTABLISHED', 'CONNECT_RESPONSE', 'UNREACHABLE', 'REJECTED', 'CONNECT_ERROR', 'ADDR_ERROR', 'ROUTE_ERROR', 'DISCONNECTED']);

  /** Every connect attempt by `client` towards `ip` since `from` that started (ADDR_RESOLVED), and how it ended. */
  function attempts(t: TestContext, client: string, ip: string, from: number): { cmId: number; start: number; end?: CmaEvent }[] {
    const ev = t.events().filter((e): e is CmaEvent => e.source === 'cma' && e.node === client && e.t >= from);
    return ev
      .filter((e) => e.point === 'cm_event_handler' && e.event === 'ADDR_RESOLVED' && (e.dst ?? '').startsWith(`${ip}:`))
      .map((s) => {
        const end = ev.find((e) => e.cmId === s.cmId && e.t >= s.t && ((e.point === 'cm_event_handler' && ENDED.has(e.event ?? '')) || e.point === 'cm_id_destroy'));
        return { cmId: s.cmId!, start: s.t, ...(end ? { end } : {}) };
      });
  }

  /** rping connects from `client`, one after the other (an rping server takes one at a time), until stopped. */
  function connectLoop(t: TestContext, client: string, ip: string, port: number): { stop: () => Promise<void> } {
    let stopped = false;
    const loop = (async () => {
      // rping ignores ADDR_CHANGE: a connection the failover strands hangs until `timeout` ends it
      // (a connect takes ~1 s here), so the next attempt still starts within the flapping.
      while (!stopped) await t.node(client).exec(['timeout', '6', 'rping', '-c', '-a', ip, '-p', String(port), '-C', '2'], { timeoutMs: 20_000 });
    })();
    return {
      stop: async () => {
        stopped = true;
        await loop;
      },
    };
  }

  /** An rping listener on the server's bond, the monitors, and a client connecting to it over and
   *  over (CM-03, CM-04): returns once the first attempt has started. */
  async function connecting(t: TestContext, port: number) {
    const [client, server] = t.pair();
    const sip = t.bondOf(server).ip;
    // The baseline comes before the listener: once it is stopped too, whatever is left is the kernel's.
    await t.resourceBaseline();
    const listener = await rpingListener(t, server, sip, port);
    await t.monitor();
    const from = now();
    const loop = connectLoop(t, client, sip, port);
    await t.waitForEvent('the client connects', () => attempts(t, client, sip, from)[0], 30_000);
    return { client, server, sip, from, loop, listener };
  }

  /** Stops the server's listener before the evidence. rping has no keepalive: a connection whose
   *  client was killed while the failover ate its DREQ (sent once, to the address the connection was
   *  made with) stays open in the listener, which the kernel cannot know without traffic. Recorded,
   *  then released with the listener: the resource check then holds every node to the baseline. */
  async function releaseListener(t: TestContext, server: string, listener: { stop: () => Promise<void> }): Promise<void> {
    const held = await t.resources();
    const srv = held.find((r) => r.node === server);
    const extra = srv ? newCmIds(t.resourceBaselineOf(server), srv).filter((d) => / rping/.test(d) && !/^LISTEN /.test(d)) : [];
    t.metric("connections the server's rping still held", extra.length, 'count');
    if (extra.length) t.attach("connections the server's rping still held (their clients had exited)", extra.join('\n'), 'text/plain');
    await t.step("stop the server's rping", () => listener.stop());
  }

  const show = (a: { cmId: number; start: number; end?: CmaEvent }[], from: number) =>
    a.map((x) => `cm.id=${x.cmId} started ${(x.start - from).toFixed(0)} ms in: ${x.end ? `${x.end.event ?? x.end.point} after ${(x.end.t - x.start).toFixed(0)} ms` : 'never ended'}`);

  test('CM-03 the peer fails over while the client connects: every attempt ends fast (connected, or an error event such as UNREACHABLE — not a CM timeout), and a retry connects', async (t) => {
    const { client, server, sip, from, loop, listener } = await connecting(t, 7340);
    const sb = await t.bond(server);
    // The peer fails over once the client is busy connecting: attempts straddle the change.
    await t.inject(new CarrierLoss(server, sb.activeSlave));
    await t.step('attempts go on across the peer\'s failover', () => sleep(4000));
    await t.step('the last attempt ends', () => loop.stop());
    const retry = await t.step('a connect after the failover', () => rpingClient(t.lab, client, sip, 7340, 5, 30_000));
    await releaseListener(t, server, listener);
    const ev = await t.evidence();
    expect(ev).to.have.failedOverTo(sb.backup, { node: server });
    const all = attempts(t, client, sip, from);
    t.attach('how each attempt ended', show(all, from));
    const fault = ev.faults[0]!.t;
    expect(all.filter((a) => a.start > fault).length, 'connect attempts after the peer began to fail over').to.be.at.least(2);
    const slow = all.filter((a) => !a.end || a.end.t - a.start > 10_000);
    expect(show(slow, from), 'attempts that did not end within 10 s').to.deep.equal([]);
    expect(retry.ok, `a connect after the failover:\n${retry.output}`).to.equal(true);
    expect(ev).to.have.noResourceLeak();
  });

  test('CM-04 the client\'s active slave flaps while it resolves and connects: every attempt ends (connected or an error event), no cm_id is left behind, no hung task', { timeoutMs: 120_000 }, async (t) => {
    const { client, server, sip, from, loop, listener } = await connecting(t, 7350);
    const cb = await t.bond(client);
    const flap = new Flap(new CarrierLoss(client, cb.activeSlave), 4, 1000);
    await t.step(flap.describe(), () => t.inject(flap));
    await t.step('the last attempt ends', () => loop.stop());
    const retry = await t.step('a connect after the flapping', () => rpingClient(t.lab, client, sip, 7350, 5, 30_000));
    await sleep(1000);
    await releaseListener(t, server, listener);
    const ev = await t.evidence();
    const all = attempts(t, client, sip, from);
    t.attach('how each attempt ended', show(all, from));
    // The title's premise: attempts were resolving/connecting while the slave flapped (in flight at
    // some point between the first carrier loss and the last carrier change).
    const [first, last] = [ev.faults[0]!.t, ev.faults.at(-1)!.t];
    const during = all.filter((a) => a.start <= last && (a.end?.t ?? Infinity) >= first);
    t.metric('connect attempts during the flapping', during.length, 'count');
    expect(during.length, `connect attempts during the flapping (${(first - from).toFixed(0)}–${(last - from).toFixed(0)} ms)`).to.be.at.least(1);
    expect(all.length, 'connect attempts in all (before and during the flapping)').to.be.at.least(2);
    expect(show(all.filter((a) => !a.end), from), 'attempts that never ended').to.deep.equal([]);
    expect(retry.ok, `a connect after the flapping:\n${retry.output}`).to.equal(true);
    // Every rping on both nodes has exited (the listener too): whatever is left is the kernel's.
    expect(ev).to.have.noResourceLeak();
    expect(ev).to.have.noKernelWarnings();
  });

  test('CM-05 the RDMA device goes away under a live ULP (RDS): DEVICE_REMOVAL reaches its cm_ids, RDS lets go, and its modules unload', { requires: { linkTypes: ['rxe'], modules: ['rds_rdma'] } }, async (t) => {
    const [client, server] = t.pair();
    const rds = await t.workload('rds', () => new RdsWorkload(t.lab, { nodes: [client, server], port: 4010, size: 2000, rate: 100, count: 3000 }).setup());
    await t.monitor();
    await t.step('RDS traffic flows', async () => {
      await rds.start();
      await progressPast(rds, 200, 30_000);
    });
    // The soft-RoCE device is the harness's own (the fabric made it): remove it, put it back after.
    const bondName = t.bondOf(client).name;
    const link = (await t.node(client).run(['rdma', '-j', 'link', 'show'])).stdout;
    const dev = (JSON.parse(link) as { ifname: string; netdev?: string }[]).find((l) => l.netdev === bondName)?.ifname;
    expect(dev, `an rxe device on ${client}/${bondName}`).to.be.a('string');
    const removedAt = now();
    await t.scope.use(
      `${dev} removed on ${client}`,
      () => t.step(`rdma link delete ${dev}`, () => t.node(client).run(['rdma', 'link', 'delete', dev!], { timeoutMs: 60_000 })),
      async () => {
        await t.node(client).run(['rdma', 'link', 'add', dev!, 'type', 'rxe', 'netdev', bondName], { timeoutMs: 30_000 });
        await waitFor(`${dev} ACTIVE again`, async () => ((await t.node(client).run(['rdma', '-j', 'link', 'show'])).stdout.includes('"ACTIVE"') ? true : undefined), { timeoutMs: 20_000 });
      },
    );
    const removedIn = now() - removedAt;
    await sleep(1000);
    const held = (await t.node(client).run(['rdma', '-j', 'res', 'show', 'cm_id'])).stdout;
    const result = await t.step('RDS traffic ends (bounded)', () => rds.finish(60_000));
    // RDS's teardown unloads the modules it loaded: that must work with the device gone.
    await t.step('RDS torn down, its modules unloaded', () => rds.teardown());
    const ev = await t.evidence({ results: [result], teardownWorkloads: false });
    const removals = ev.events.filter((e) => e.source === 'cma' && e.node === client && e.point === 'cm_event_handler' && e.event === 'DEVICE_REMOVAL');
    expect(removals.length, 'DEVICE_REMOVAL events on the client').to.be.at.least(1);
    expect(removedIn, 'rdma link delete returned (nothing held the device)').to.be.below(30_000);
    expect(held.trim(), 'no cm_id left on the client after the removal').to.match(/^\[?\]?$|^\[\s*\]$/);
    expect(ev).to.have.noKernelWarnings();
    t.metric('device removal took', removedIn);
  });
});
