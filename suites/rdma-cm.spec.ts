// RDMA CM event semantics on a bond failover (B. in the test plan).
import { suite, test, expect, type TestContext } from '../harness/fixture/test.ts';
import { CarrierLoss } from '../harness/fault/fault.ts';
import { RpingWorkload, rpingClient } from '../harness/workload/rping.ts';
import { progressPast } from '../harness/workload/workload.ts';
import { failoverBudget } from '../harness/topology/defaults.ts';
import { sleep, waitFor } from '../harness/clock.ts';
import type { Subscription } from 'rxjs';

/** A long-lived rping listener on `node` (persistent server), stopped at teardown. */
async function rpingListener(t: TestContext, node: string, ip: string, port: number): Promise<void> {
  let sub: Subscription | undefined;
  await t.scope.use(
    `rping listener ${node} ${ip}:${port}`,
    async () => {
      sub = t.node(node).stream(['rping', '-s', '-P', '-a', ip, '-p', String(port)], { timeoutMs: 30 * 60_000 }).subscribe({ error: () => undefined });
      await sleep(1500);
    },
    async () => {
      sub?.unsubscribe();
      await t.node(node).settle();
    },
  );
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
});
