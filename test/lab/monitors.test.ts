// The lab session's monitors (VM lab, for real): started by the first test that watches, kept from
// test to test — each test sees only its own window — and started again after a reboot. What
// changed between two windows (a trace system's events switched off, as a module reload leaves
// them) is put right when the next window opens.
import { expect } from 'chai';
import { suite, test, type TestContext } from '../../harness/fixture/test.ts';
import { RpingWorkload } from '../../harness/workload/rping.ts';
import { progressPast } from '../../harness/workload/workload.ts';
import type { CmaEvent, KmsgEvent } from '../../harness/monitor/events.ts';
import { cmaWorkRuns } from '../../harness/assert/chai-failover.ts';

/** node-a's bond poller PIDs and this run's trace instance there. */
async function ours(t: TestContext, node: string): Promise<{ pollers: string; instance: string }> {
  const r = await t.node(node).run(['sh', '-c', 'pgrep -f "^bash -c .* bondpoll " | sort | tr "\\n" " "; echo; ls -d /sys/kernel/tracing/instances/rf-$1-* 2>/dev/null', 'ours', String(process.pid)]);
  const [pollers = '', instance = ''] = r.stdout.split('\n');
  return { pollers: pollers.trim(), instance: instance.trim() };
}

const kmsg = async (t: TestContext, node: string, text: string): Promise<void> => void (await t.node(node).writeFile('/dev/kmsg', `${text}\n`));
const logged = (events: readonly { source: string }[], text: string): boolean => events.some((e) => e.source === 'kmsg' && (e as KmsgEvent).text.includes(text));

suite('the monitors: one set per lab session, a window per test (VM lab)', { requires: { nodes: 2, tools: ['rping'] } }, () => {
  let first: { pollers: string; instance: string } | undefined;

  test('a test that watches: the monitors run, and its window records what happens in it', async (t) => {
    const [a] = t.pair();
    await t.monitor();
    first = await ours(t, a);
    expect(first.pollers, 'a bond poller runs').to.match(/^\d+/);
    expect(first.instance, 'a trace instance of this run').to.match(/\/rf-\d+-\d+$/);
    await kmsg(t, a, 'rf-window-one');
    const ev = await t.evidence();
    expect(logged(ev.events, 'rf-window-one')).to.equal(true);
  });

  test("the next test watches through the same processes, sees only its own window, and traces what was switched off since", async (t) => {
    const [a, b] = t.pair();
    if (!first) throw new Error('needs the previous test');
    const inst = first.instance;
    // Between windows the gate is closed: no tracing, the pollers idle.
    expect((await t.node(a).readFile(`${inst}/tracing_on`)).trim(), 'gate between tests').to.equal('0');
    await kmsg(t, a, 'rf-between-windows');
    // As a reload of rdma_cm leaves them: its events exist in the instance, switched off.
    const rping = await t.workload('rping', () => Promise.resolve(new RpingWorkload(t.lab, { client: a, server: b, port: 7350 })));
    // (the fabric loads rdma_cm: its events are in every instance)
    await t.node(a).writeFile(`${inst}/events/rdma_cma/enable`, '0');
    await t.monitor();
    expect(await ours(t, a), 'the same monitors').to.deep.equal(first);
    expect((await t.node(a).readFile(`${inst}/tracing_on`)).trim()).to.equal('1');
    expect((await t.node(a).readFile(`${inst}/events/rdma_cma/enable`)).trim(), 'rdma_cma traced again').to.equal('1');
    await kmsg(t, a, 'rf-window-two');
    await t.step('rping connects and pings', () => rping.start());
    await t.step('pings flow', () => progressPast(rping, rping.done + 20, 20_000));
    const ev = await t.evidence({ results: [await rping.finish()] });
    expect(logged(ev.events, 'rf-window-two'), 'its own line').to.equal(true);
    expect(logged(ev.events, 'rf-between-windows'), 'a line from before its window').to.equal(false);
    expect(logged(ev.events, 'rf-window-one'), "the previous test's line").to.equal(false);
    const cm = ev.events.filter((e): e is CmaEvent => e.source === 'cma' && e.node === a);
    // rping's QP is user space's: the kernel reports the REP as CONNECT_RESPONSE (cma_ib_handler,
    // no id->qp) and librdmacm makes ESTABLISHED itself
    expect(cm.map((e) => e.event).filter(Boolean), "rping's CM events on node-a").to.include.members(['ADDR_RESOLVED', 'ROUTE_RESOLVED', 'CONNECT_RESPONSE']);
    expect(ev.events.filter((e) => e.source === 'bond' && e.node === a), 'the bond state at the window start').to.not.be.empty;
    // rdma_cm's workqueue handler, traced by its address: RoCE's route resolution is delivered from
    // it (cma_resolve_iboe_route queues the work), and nothing else of the node's work comes through
    const runs = cmaWorkRuns(ev, a, ev.recording.startedAt);
    expect(runs.flatMap((r) => r.delivered.map((d) => d.event)), "rping's ROUTE_RESOLVED, from a run of cma_work_handler").to.include('ROUTE_RESOLVED');
    expect([...new Set(cm.filter((e) => e.point.startsWith('workqueue_')).map((e) => e.fields.function))], 'only that handler').to.deep.equal(['cma_work_handler']);
  });

  test('after a reboot (a fresh lab) the monitors start again', { fresh: true }, async (t) => {
    const [a] = t.pair();
    if (!first) throw new Error('needs the first test');
    await t.monitor();
    const now = await ours(t, a);
    expect(now.instance).to.match(/\/rf-\d+-\d+$/);
    expect(now.instance, 'a new instance').to.not.equal(first.instance);
    await kmsg(t, a, 'rf-window-three');
    const ev = await t.evidence();
    expect(logged(ev.events, 'rf-window-three')).to.equal(true);
  });
});
