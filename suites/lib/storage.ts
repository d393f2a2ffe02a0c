// The failover tests every block/file storage ULP gets (C. and D. in the test plan), written once:
// each storage suite states its ULP, its workload and its IDs, and calls these.
import { expect, test, type TestContext, type TestOptions } from '../../harness/fixture/test.ts';
import { BothDown, CarrierLoss, Failback } from '../../harness/fault/fault.ts';
import { failoverBudget, reconnectBudget, type Ulp } from '../../harness/topology/defaults.ts';
import { progressPast, type Workload } from '../../harness/workload/workload.ts';
import { sleep } from '../../harness/clock.ts';

export interface StorageUlp<W extends Workload> {
  ulp: Ulp;
  /** the test plan ID of its failover test, e.g. UL-ISER-01 */
  id: string;
  /** [client side, server side] role names in the topology */
  roles: [string, string];
  /** words for the two sides, e.g. ['initiator', 'target'] */
  sides: [string, string];
  /** sets the workload up (target + initiator), torn down after the test */
  make: (t: TestContext, client: string, server: string) => Promise<W>;
  /** progress units that show I/O is flowing (bytes) */
  step: number;
  /** set when the ULP must act on the RDMA CM's UNREACHABLE for an established connection because
   *  its own liveness check cannot catch it afterwards: why (shown with a failure) */
  mustActOnUnreachable?: string;
}

/** Sets the workload up, starts monitors and I/O, waits until I/O flows. */
async function running<W extends Workload>(t: TestContext, u: StorageUlp<W>): Promise<{ w: W; client: string; server: string }> {
  const [client, server] = t.pair(u.roles);
  const w = await t.workload(u.ulp, () => t.step(`set up ${u.ulp} (${u.sides[1]} ${server}, ${u.sides[0]} ${client})`, () => u.make(t, client, server)));
  await t.monitor();
  await t.step(`start verified I/O on the ${u.sides[0]}`, () => w.start());
  await t.step('I/O flows before the fault', () => progressPast(w, w.done + u.step, 60_000));
  return { w, client, server };
}

/**
 * Waits for I/O to pass its next step within the budget. If it does not, the verdict comes from
 * the evidence: the reconnect assertion fails with the timeline, showing how far the failover got.
 */
async function resumes<W extends Workload>(t: TestContext, u: StorageUlp<W>, w: W, via: string, budgetMs: number): Promise<void> {
  const ok = await t.step(`${u.ulp} I/O resumes`, () => progressPast(w, w.done + u.step, budgetMs + 10_000)).then(
    () => true,
    () => false,
  );
  if (ok) return;
  const ev = await t.evidence({ teardownWorkloads: false });
  expect(ev).to.have.reconnected(u.ulp, { via, within: budgetMs });
  throw new Error(`${u.ulp}: I/O did not pass ${w.done + u.step} within ${budgetMs + 10_000} ms, although the timeline shows a reconnect`);
}

/** How long a ULP may take to act on UNREACHABLE: its CM handler runs at once; 2 s is generous. */
const UNREACHABLE_REACTION_MS = 2000;

async function finishVerified(t: TestContext, w: Workload) {
  const result = await t.step('I/O finishes and every block verifies', () => w.finish());
  return t.evidence({ results: [result] });
}

export function storageTests<W extends Workload>(u: StorageUlp<W>): void {
  const budget = (t: TestContext) => reconnectBudget(t.topology, u.ulp);
  // 'full': part of the certification set, not of CI (which runs the quick one per ULP).
  const opts = (o: TestOptions = {}): TestOptions => ({ timeoutMs: 600_000, tags: ['full'], ...o });

  test(`${u.id} baseline: verified I/O with no fault`, async (t) => {
    const { w } = await running(t, u);
    const ev = await finishVerified(t, w);
    expect(ev).to.have.deliveredEverything();
    expect(ev).to.have.noKernelWarnings();
    expect(ev).to.have.noResourceLeak();
  }, opts());

  for (const side of [0, 1] as const) {
    const title =
      side === 0
        ? `${u.id} carrier loss on the ${u.sides[0]}'s active slave during I/O: back through the new slave within budget, data verified`
        : `RF-07 carrier loss on the ${u.sides[1]}'s active slave during I/O: the ${u.sides[0]} reconnects within budget, data verified`;
    test(title, async (t) => {
      const { w, client, server } = await running(t, u);
      const victim = side === 0 ? client : server;
      const bond = await t.bond(victim);
      const fault = new CarrierLoss(victim, bond.activeSlave);
      await t.inject(fault);
      await resumes(t, u, w, bond.backup, budget(t));
      await t.heal(fault);
      const ev = await finishVerified(t, w);
      expect(ev).to.have.failedOverTo(bond.backup).within(failoverBudget(t.topology));
      expect(ev).to.have.reconnected(u.ulp, { via: bond.backup, within: budget(t) });
      expect(ev).to.have.deliveredEverything();
      expect(ev).to.have.noKernelWarnings();
      expect(ev).to.have.noResourceLeak();
    }, opts({ tags: side === 0 ? ['quick'] : [] }));
  }

  test(`RF-02 failback to the primary during ${u.ulp} I/O: a failover each way, I/O recovers both times`, async (t) => {
    const { w, client } = await running(t, u);
    const bond = await t.bond(client);
    await t.primary(client, bond.activeSlave);
    const loss = new CarrierLoss(client, bond.activeSlave);
    await t.inject(loss);
    await t.step('I/O resumes over the backup', () => progressPast(w, w.done + u.step, budget(t) + 10_000));
    await t.inject(new Failback(client, bond.name, bond.activeSlave));
    await t.step('I/O resumes after the failback', () => progressPast(w, w.done + u.step, budget(t) + 10_000));
    const ev = await finishVerified(t, w);
    expect(ev).to.have.failedOverTo(bond.backup, { index: 0 }).within(failoverBudget(t.topology));
    expect(ev).to.have.failedOverTo(bond.activeSlave, { index: 1 }).within(failoverBudget(t.topology));
    expect(ev).to.have.reconnected(u.ulp, { within: budget(t) });
    expect(ev).to.have.deliveredEverything();
    expect(ev).to.have.noKernelWarnings();
  }, opts());

  test(`RF-01 five flaps of the active slave during ${u.ulp} I/O: no data error, no leak, no kernel warning`, async (t) => {
    const { w, client } = await running(t, u);
    const flaps = t.topology.faults?.flap?.count ?? 5;
    const period = t.topology.faults?.flap?.period_ms ?? 3000;
    for (let i = 0; i < flaps; i++) {
      const bond = await t.bond(client);
      const f = new CarrierLoss(client, bond.activeSlave);
      await t.inject(f);
      await sleep(period / 2);
      await t.heal(f);
      await sleep(period / 2);
    }
    await t.step('I/O resumes after the last flap', () => progressPast(w, w.done + u.step, budget(t) + 10_000));
    const ev = await finishVerified(t, w);
    expect(ev).to.have.failedOver({ node: client });
    expect(ev).to.have.deliveredEverything();
    expect(ev).to.have.noKernelWarnings();
    expect(ev).to.have.noResourceLeak();
  }, opts({ tags: ['long'] }));

  test(`RF-03 both links down for less than the give-up time: ${u.ulp} I/O stalls, then resumes with no errors`, async (t) => {
    const { w, client } = await running(t, u);
    const downMs = t.topology.faults?.both_down?.short_ms ?? 3000;
    const bond = await t.bond(client);
    const both = new BothDown(client, bond.name, bond.slaves, downMs);
    const ref = await t.inject(both);
    await sleep(Math.max(0, ref.t + downMs - Date.now()));
    await t.heal(both);
    const stalled = await t.step('I/O resumes after the links return', () => progressPast(w, w.done + u.step, budget(t) + 10_000)).then(
      () => undefined,
      (e: Error) => e,
    );
    if (u.mustActOnUnreachable) {
      // Judged on the event itself, not on whether a timer happened to be running when it came.
      const seen = await t.evidence({ teardownWorkloads: false });
      const outcome = stalled ? `In this run I/O did not resume: ${stalled.message.split('\n')[0]}` : 'In this run I/O resumed anyway (a liveness probe was already in flight).';
      expect(seen).to.have.actedOnUnreachable(u.ulp, { within: UNREACHABLE_REACTION_MS, why: `${u.mustActOnUnreachable}\n${outcome}` });
    }
    if (stalled) throw stalled;
    const ev = await finishVerified(t, w);
    expect(ev).to.have.reconnected(u.ulp, { within: downMs + budget(t) });
    expect(ev).to.have.deliveredEverything();
    expect(ev).to.have.noKernelWarnings();
  }, opts());

  test(`RF-04 a failover while the ${u.sides[0]} connects: it connects (or fails cleanly and a retry succeeds), then verified I/O`, async (t) => {
    const [client, server] = t.pair(u.roles);
    await t.monitor();
    const bond = await t.bond(client);
    const fault = new CarrierLoss(client, bond.activeSlave);
    // The fault lands while the workload sets up (target, then login/mount/connect).
    const setup = t.workload(u.ulp, () => u.make(t, client, server));
    await sleep(1500);
    await t.inject(fault);
    let w: W;
    try {
      w = await t.step(`${u.ulp} set-up completes despite the failover`, () => setup);
    } catch (e) {
      t.attach('first attempt', String((e as Error).message));
      await t.heal(fault);
      w = await t.step(`retry the ${u.ulp} set-up`, () => t.workload(`${u.ulp} retry`, () => u.make(t, client, server)));
    }
    await t.step('verified I/O', () => w.start());
    const ev = await finishVerified(t, w);
    expect(ev).to.have.deliveredEverything();
    expect(ev).to.have.noKernelWarnings();
  }, opts());

  test(`RF-05 a failover during ${u.sides[0]} teardown: it completes and leaks nothing`, async (t) => {
    const { w, client } = await running(t, u);
    const result = await w.finish();
    const bond = await t.bond(client);
    const fault = new CarrierLoss(client, bond.activeSlave);
    const teardown = w.teardown();
    await sleep(300);
    await t.inject(fault);
    await t.step(`${u.ulp} teardown completes`, () => teardown);
    await t.heal(fault);
    const ev = await t.evidence({ results: [result], teardownWorkloads: false });
    expect(ev).to.have.deliveredEverything();
    expect(ev).to.have.noKernelWarnings();
    expect(ev).to.have.noResourceLeak();
  }, opts());
}

/** RF-03, the long version: the outage outlasts the give-up time; a clean, reported failure (no
 *  hang), and the ULP works again once the links return. */
export function longOutageTest<W extends Workload>(u: StorageUlp<W>, giveUpMs: (t: TestContext) => number): void {
  test(`RF-03 both links down for longer than the give-up time: ${u.ulp} fails cleanly and in bounded time`, async (t) => {
    const { w, client } = await running(t, u);
    const bond = await t.bond(client);
    const downMs = Math.max(t.topology.faults?.both_down?.long_ms ?? 45_000, giveUpMs(t) + 5000);
    const both = new BothDown(client, bond.name, bond.slaves, downMs);
    const ref = await t.inject(both);
    await sleep(Math.max(0, ref.t + downMs - Date.now()));
    await t.heal(both);
    const result = await t.step('the workload ends (bounded)', () => w.finish(90_000));
    const ev = await t.evidence({ results: [result] });
    // What must hold: the run did not hang, and the outcome is reported (data check or I/O error).
    t.attach('outcome after a long outage', { dataOk: result.dataOk, summary: result.summary, errors: result.errors.slice(0, 10) });
    expect(ev.workloads[0]!.summary).to.be.a('string');
  }, { timeoutMs: 600_000, tags: ['long'] });
}
