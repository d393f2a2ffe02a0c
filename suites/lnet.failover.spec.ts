// UL-LNET-01 — Lustre LNet over o2iblnd (the 2006 bonding-over-IPoIB design names Lustre among its
// ULPs): LNet pings across the failover, and LNet's own health values back at the maximum after.
// Real labs only: Debian ships no Lustre modules (lnet, ko2iblnd), so the embedded VM lab skips it;
// the lab's LNet must already have an NI on the bond (the harness never configures a lab's LNet).
import { suite, test, expect } from '../harness/fixture/test.ts';
import { CarrierLoss } from '../harness/fault/fault.ts';
import { LnetWorkload } from '../harness/workload/lnet.ts';
import { progressPast } from '../harness/workload/workload.ts';
import { failoverBudget, reconnectBudget } from '../harness/topology/defaults.ts';

suite('UL-LNET-01 LNet over o2iblnd survives the loss of the active link', { requires: { nodes: 2, modules: ['lnet', 'ko2iblnd'], tools: ['lnetctl'], capabilities: ['carrier'] } }, () => {
  test("UL-LNET-01 carrier loss on the client's active slave: LNet pings answer again through the new slave within budget, health back at 1000", { tags: ['quick'] }, async (t) => {
    const [client, server] = t.pair();
    const w = t.topology.workloads?.lnet;
    const lnet = await t.workload('lnet', () =>
      new LnetWorkload(t.lab, { client, server, ...(w?.net ? { net: w.net } : {}), ...(w?.interval_ms ? { intervalMs: w.interval_ms } : {}) }).setup(),
    );
    await t.monitor();
    await t.step('LNet pings flow', async () => {
      await lnet.start();
      await progressPast(lnet, lnet.done + 5, 30_000);
    });
    const bond = await t.bond(client);
    const fault = new CarrierLoss(client, bond.activeSlave);
    const lost = await t.inject(fault);
    // what was in flight at the carrier loss is not a resume: count from the switch
    await t.bondRunsOn(client, bond.backup, lost.t, failoverBudget(t.topology) + 5000);
    const budget = reconnectBudget(t.topology, 'lnet');
    await t.step('LNet pings answer again', () => progressPast(lnet, lnet.done + 5, budget + 10_000));
    await t.heal(fault);
    const result = await t.step('LNet health back at the maximum', () => lnet.finish());
    const ev = await t.evidence({ results: [result] });
    expect(ev).to.have.failedOverTo(bond.backup).within(failoverBudget(t.topology));
    expect(ev).to.have.reconnected('lnet', { via: bond.backup, within: budget });
    expect(ev).to.have.deliveredEverything();
    expect(ev).to.have.noKernelWarnings();
  });
});
