// UL-RPING-01 — rping, the reference for a ULP that does NOT reconnect.
// rping ignores RDMA_CM_EVENT_ADDR_CHANGE ("unhandled event … ignoring") and its connection dies
// with the old path. The harness must say so — FAIL, with the reason, within the budget — and the
// certification table marks it an expected failure. If rping ever reconnects, this test fails.
import { suite, test, expect } from '../harness/fixture/test.ts';
import { CarrierLoss } from '../harness/fault/fault.ts';
import { RpingWorkload } from '../harness/workload/rping.ts';
import { progressPast } from '../harness/workload/workload.ts';
import { reconnectBudget } from '../harness/topology/defaults.ts';

suite('UL-RPING-01 rping does not reconnect after a failover', { requires: { nodes: 2, tools: ['rping'], capabilities: ['carrier'] } }, () => {
  test(
    "UL-RPING-01 carrier loss on the client's active slave: FAIL, ADDR_CHANGE ignored, no reconnect within the budget",
    async (t) => {
      const [client, server] = t.pair();
      const rping = await t.workload('rping', () => Promise.resolve(new RpingWorkload(t.lab, { client, server, port: t.topology.workloads?.rping?.port ?? 7174 })));
      await t.monitor();
      await t.step('rping connects and pings', () => rping.start());
      await t.step('pings flow', () => progressPast(rping, rping.done + 100, 20_000));
      const bond = await t.bond(client);
      await t.inject(new CarrierLoss(client, bond.activeSlave));
      const budget = reconnectBudget(t.topology, 'rping');
      await t.step(`wait up to the budget (${budget} ms) for pings to resume`, () => progressPast(rping, rping.done + 50, budget).then(() => undefined, () => undefined));
      const ev = await t.evidence({ results: [await rping.finish()] });

      // The path under rping did its part: failover, ADDR_CHANGE delivered to rping's cm_id …
      expect(ev).to.have.failedOverTo(bond.backup);
      expect(ev).to.have.addrChangeDeliveredTo();
      // … and rping does not reconnect: this is the assertion expected to fail.
      expect(ev).to.have.reconnected('rping', { within: budget });
    },
    // Its FAIL is known (known-issues.yaml: rping-ignores-addr-change): the run reports it KNOWN.
    { tags: ['quick'] },
  );
});
