// UL-SRP-01 — SRP via the RDMA CM, the known gap: ib_srp does not handle RDMA_CM_EVENT_ADDR_CHANGE
// (it logs "Unhandled CM event 14") and recovers only when its QP fails and the SRP transport's
// reconnect timer fires. The test measures that recovery path and checks the data; the assertion
// that SRP reacts to the address change itself is the expected failure. If ib_srp ever handles
// ADDR_CHANGE, this test fails and the expectation must be updated.
import { suite, test, expect } from '../harness/fixture/test.ts';
import { CarrierLoss } from '../harness/fault/fault.ts';
import { SrpWorkload } from '../harness/workload/srp.ts';
import { srp as srpUlp } from '../harness/ulp/srp.ts';
import { progressPast } from '../harness/workload/workload.ts';
import { failoverBudget, reconnectBudget } from '../harness/topology/defaults.ts';

/** How soon after ADDR_CHANGE a ULP that handles it starts a new connection (iSER/NVMe/RDS: < 1 s here). */
const REACT_MS = 5000;

suite('UL-SRP-01 SRP over the RDMA CM on a bond failover (known gap)', { requires: { nodes: 2, modules: ['ib_srp', 'ib_srpt'], tools: ['fio'], capabilities: ['carrier'], unsupported: srpUlp.unsupported } }, () => {
  test(
    "UL-SRP-01 carrier loss on the initiator's active slave: ADDR_CHANGE unhandled; recovery (if the QP fails) by the SRP reconnect timer, data verified",
    async (t) => {
      const [initiator, target] = t.pair(['initiator', 'target']);
      const w = t.topology.workloads?.srp;
      const srp = await t.workload('srp', () => t.step(`set up SRP (target ${target}, initiator ${initiator})`, () => new SrpWorkload(t.lab, { initiator, target, ...(w?.size_mib ? { sizeMiB: w.size_mib } : {}) }).setup()));
      await t.monitor();
      await t.step('start verified I/O on the initiator', () => srp.start());
      await t.step('I/O flows before the fault', () => progressPast(srp, srp.done + 8 * 2 ** 20, 60_000));
      const bond = await t.bond(initiator);
      const fault = new CarrierLoss(initiator, bond.activeSlave);
      const lost = await t.inject(fault);
      // what was in flight at the carrier loss is not a resume: count from the switch
      await t.bondRunsOn(initiator, bond.backup, lost.t, failoverBudget(t.topology) + 5000);
      const budget = reconnectBudget(t.topology, 'srp');
      // Whether SRP comes back depends on its QP failing (then reconnect_delay) — not on the event.
      const resumed = await t.step(`SRP I/O resumes (up to ${budget} ms)`, () => progressPast(srp, srp.done + 8 * 2 ** 20, budget)).then(
        () => true,
        () => false,
      );
      await t.heal(fault);
      const ev = resumed ? await t.evidence({ results: [await t.step('I/O finishes and every block verifies', () => srp.finish())] }) : await t.evidence({ teardownWorkloads: false });

      // The path did its part …
      expect(ev).to.have.failedOverTo(bond.backup).within(failoverBudget(t.topology));
      expect(ev).to.have.addrChangeDeliveredTo();
      // … and when SRP came back, nothing was lost.
      if (resumed) expect(ev).to.have.deliveredEverything();

      // The gap: ib_srp ignores ADDR_CHANGE, so nothing starts a new connection right after it.
      const tl = ev.timelines.find((x) => x.ulp === 'srp')!;
      const change = tl.phases.find((p) => p.id === 'addr_change');
      const resolved = tl.phases.find((p) => p.id === 'addr_resolved');
      const qpError = tl.phases.find((p) => p.id === 'qp_error' || p.id === 'disconnected');
      const unhandled = ev.events.find((e) => e.source === 'kmsg' && e.node === initiator && /Unhandled CM event/.test(e.text));
      const reactMs = resolved?.atMs !== undefined && change?.atMs !== undefined ? resolved.atMs - change.atMs : Infinity;
      t.metric('SRP new connection after ADDR_CHANGE', Number.isFinite(reactMs) ? reactMs : -1);
      const path = resumed
        ? `recovered through ${qpError?.atMs !== undefined ? `the QP error at ${qpError.atMs.toFixed(0)} ms and ` : ''}the SRP reconnect timer: I/O resumed at ${tl.summary.ioResumedMs?.toFixed(0) ?? '?'} ms, data verified`
        : `no QP error${qpError?.atMs !== undefined ? ` before ${qpError.atMs.toFixed(0)} ms` : ''}, so no reconnect: I/O had not resumed ${budget} ms after the fault (SCSI error handling takes over)`;
      expect(
        reactMs,
        `SRP does not react to ADDR_CHANGE: ${unhandled && unhandled.source === 'kmsg' ? `"${unhandled.text}"; ` : ''}its new connection started ${Number.isFinite(reactMs) ? `${reactMs.toFixed(0)} ms` : 'never'} after the address change (a ULP that handles it starts within ${REACT_MS} ms); ${path}`,
      ).to.be.at.most(REACT_MS);
    },
    {
      timeoutMs: 600_000,
      tags: ['quick'],
      allowKernel: [{ pattern: 'ib_srp: Unhandled CM event 14', reason: 'the known gap this test records: ib_srp ignores RDMA_CM_EVENT_ADDR_CHANGE (14)' }],
    },
  );
});
