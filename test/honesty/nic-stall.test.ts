// The VM lab's own faults interrupt the attempt they happen in — an emulated NIC that stalls, and
// soft-RoCE failing a send on its GSI QP (after which the node's CM never receives again): the test
// stops waiting at once, is retried as a lab-infrastructure fault, and the report keeps both
// attempts. Without the kmsg interrupt the first attempt would sit out its 120 s wait. (Only the
// kernel's words are planted: the NIC's tx_timeout counters do not grow, so the node probe finds
// the NIC healthy; the planted rxe line is in the boot's log, so the probe reboots node-a before the
// GSI retry, as it would for a real one.) Each first attempt also leaves a loop acting on node-a,
// as a set-up polling a node would: the retry proves none of its commands runs any more.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ReportTest, RunReport } from '../../harness/report/schema.ts';
import { releaseSharedLab } from '../../harness/fixture/lab-session.ts';

/** The change the fixture's first attempt leaves journaled (its LEFTOVER; importing the fixture would declare its suite here). */
const LEFTOVER = '/run/rf-leftover-of-the-stopped-attempt';

describe('honesty: a VM lab fault stops the attempt at once and retries it', function () {
  this.timeout(700_000);
  let rep: RunReport;
  let out: string;
  before(async () => {
    // The child run uses the lab: this process's session (and its monitors) lets go of it first.
    await releaseSharedLab({ keepLab: true });
    const reports = mkdtempSync(join(tmpdir(), 'rf-stall-'));
    try {
      const r = await new Promise<{ code: number | null; out: string }>((res, rej) => {
        const child = spawn('npx', ['mocha', 'test/fixtures/specs/nic-stall.fixture.ts'], { env: { ...process.env, NO_COLOR: '1', RDMA_FAILOVER_PDF: '0', RDMA_FAILOVER_TAGS: '', RDMA_FAILOVER_EXCLUDE_TAGS: '', RDMA_FAILOVER_REPORTS: reports, RDMA_FAILOVER_RUN: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
        let o = '';
        child.stdout.on('data', (c: Buffer) => (o += c.toString()));
        child.stderr.on('data', (c: Buffer) => (o += c.toString()));
        const timer = setTimeout(() => (child.kill('SIGKILL'), rej(new Error(`the fixture run did not finish within 600 s:\n${o}`))), 600_000);
        child.on('close', (code) => (clearTimeout(timer), res({ code, out: o })));
      });
      out = r.out;
      const run = readdirSync(reports).filter((d) => d !== 'latest').sort().pop()!;
      rep = JSON.parse(readFileSync(join(reports, run, 'report.json'), 'utf8')) as RunReport;
    } finally {
      rmSync(reports, { recursive: true, force: true });
    }
  });

  /** The first attempt was cut short by `error`, the infrastructure named, the retry passed. */
  function interruptedThenRetried(id: string, infrastructure: RegExp, error: RegExp, wait: string): ReportTest {
    const t = rep.tests.find((x) => x.planId === id)!;
    expect(t, out.slice(-3000)).to.not.equal(undefined);
    expect(t.status, out.slice(-3000)).to.equal('passed');
    expect(t.attempts, 'the first attempt is kept').to.have.length(1);
    const first = t.attempts[0]!;
    expect(first.infrastructure).to.match(infrastructure);
    expect(first.error).to.match(error);
    // The wait is recorded as abandoned where the interrupt came, not as a step that finished (or ran
    // on past the test); the test's own time shows it was cut short: both attempts together take
    // less than the first one's 120 s wait would have.
    const waited = first.steps.filter((s) => s.name === wait);
    expect(waited, 'the wait, once, in the first attempt').to.have.length(1);
    expect(waited[0]!.error, 'the wait never finished').to.match(/^abandoned: lab infrastructure: node-a's /);
    expect(waited[0]!.durationMs, 'cut short where the interrupt came').to.be.below(30_000);
    expect(t.steps.map((s) => s.name), 'nothing of the first attempt in the retry').to.not.include(wait);
    process.stdout.write(`      measured: both attempts took ${Math.round(t.durationMs)} ms (the first one's wait alone was 120000); repairs before the retry: ${t.repairs.map((r) => `${r.node}: ${r.action}`).join('; ') || 'none'}\n`);
    expect(t.durationMs, 'the kmsg interrupt cut the 120 s wait short').to.be.below(90_000);
    expect(t.steps.map((s) => s.name)).to.include('the second attempt runs');
    // the first attempt's body kept trying to act on node-a: its commands were refused (gate.ts)
    const check = t.steps.find((s) => s.name === "the stopped attempt's body acts no more");
    expect(check, 'checked in the retry').to.not.equal(undefined);
    expect(check!.error).to.equal(undefined);
    return t;
  }

  it('an emulated NIC stall: the attempt ends within seconds of the watchdog line, the retry passes, the report keeps both', () => {
    interruptedThenRetried('CM-86', /node-a: an emulated virtio-net NIC stopped transmitting/, /lab infrastructure: node-a's emulated NIC stopped transmitting \("virtio_net virtio1 eth0: NETDEV WATCHDOG/, 'wait for what never comes (the stall must cut this short)');
  });

  it("soft-RoCE's failed GSI send: the attempt ends within seconds of rxe's line, named with the step it stopped, the retry passes on a rebooted node", () => {
    const t = interruptedThenRetried(
      'CM-84',
      /node-a: rdma_rxe could not send on the GSI QP \(qp#1\)/,
      /lab infrastructure: node-a's soft-RoCE GSI QP \(qp#1\) failed a send \("rdma_rxe: qp#1 Failed allocating skb"\): .* stopped during "wait for a connect that can never come/,
      'wait for a connect that can never come (the failed send must cut this short)',
    );
    expect(t.repairs.map((r) => r.node), 'the node whose GSI QP failed is rebooted before the retry').to.include('node-a');
    // Rebooted before its leftovers are replayed: the stopped attempt's change went with the boot,
    // and its undo is forgotten, not run on a node about to lose it (8-12 s per reboot).
    const leftover = t.repairs.find((r) => r.action.includes(LEFTOVER));
    expect(leftover?.action, 'the first attempt left its change journaled').to.be.a('string');
    expect(leftover!.action).to.match(/nothing to undo: the node rebooted since/);
    // …and only its part of the fabric is rebuilt (node-b's bond and RDMA link were intact)
    expect((t.harness ?? []).map((h) => h.name), 'the rebooted node\'s fabric alone').to.include('ready: fabric of the rebooted');
  });

  it('a leftover on a node that is not rebooted is undone before the retry (the NIC stall)', () => {
    const t = rep.tests.find((x) => x.planId === 'CM-86')!;
    const leftover = t.repairs.find((r) => r.action.includes(LEFTOVER));
    expect(leftover?.action, out.slice(-2000)).to.match(new RegExp(`node-a: remove ${LEFTOVER}$`));
  });
});
