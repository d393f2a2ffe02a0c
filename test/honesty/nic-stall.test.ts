// The VM lab's emulated-NIC stall interrupts the attempt it happens in: the test stops waiting at
// once, is retried as a lab-infrastructure fault, and the report keeps both attempts. Without the
// kmsg interrupt the first attempt would sit out its 120 s wait. (Only the kernel's words are
// planted: the NIC's tx_timeout counters do not grow, so the node probe finds it healthy and the
// retry runs without a reboot; a real stall grows them and the node is rebooted first.)
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunReport } from '../../harness/report/schema.ts';
import { releaseSharedLab } from '../../harness/fixture/lab-session.ts';

describe('honesty: an emulated NIC that stalls stops the attempt at once and retries it', function () {
  this.timeout(600_000);
  // The child run uses the lab: this process's session (and its monitors) lets go of it first.
  before(() => releaseSharedLab({ keepLab: true }));

  it('the attempt ends within seconds of the watchdog line, the retry passes, the report keeps both', async () => {
    const reports = mkdtempSync(join(tmpdir(), 'rf-stall-'));
    try {
      const out = await new Promise<{ code: number | null; out: string }>((res, rej) => {
        const child = spawn('npx', ['mocha', 'test/fixtures/specs/nic-stall.fixture.ts'], { env: { ...process.env, NO_COLOR: '1', RDMA_FAILOVER_PDF: '0', RDMA_FAILOVER_TAGS: '', RDMA_FAILOVER_EXCLUDE_TAGS: '', RDMA_FAILOVER_REPORTS: reports, RDMA_FAILOVER_RUN: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
        let o = '';
        child.stdout.on('data', (c: Buffer) => (o += c.toString()));
        child.stderr.on('data', (c: Buffer) => (o += c.toString()));
        const timer = setTimeout(() => (child.kill('SIGKILL'), rej(new Error(`the fixture run did not finish within 500 s:\n${o}`))), 500_000);
        child.on('close', (code) => (clearTimeout(timer), res({ code, out: o })));
      });
      const run = readdirSync(reports).filter((d) => d !== 'latest').sort().pop()!;
      const rep = JSON.parse(readFileSync(join(reports, run, 'report.json'), 'utf8')) as RunReport;
      const t = rep.tests.find((x) => x.planId === 'CM-86')!;
      expect(t.status, out.out.slice(-3000)).to.equal('passed');
      expect(t.attempts, 'the first attempt is kept').to.have.length(1);
      const first = t.attempts[0]!;
      expect(first.infrastructure).to.match(/node-a: an emulated virtio-net NIC stopped transmitting/);
      expect(first.error).to.match(/lab infrastructure: node-a's emulated NIC stopped transmitting \("virtio_net virtio1 eth0: NETDEV WATCHDOG/);
      // The wait is recorded as abandoned where the interrupt came, not as a step that finished (or
      // ran on past the test); the test's own time shows it was cut short: both attempts together
      // take less than the first one's 120 s wait would have.
      const wait = 'wait for what never comes (the stall must cut this short)';
      const waited = first.steps.filter((s) => s.name === wait);
      expect(waited, 'the wait, once, in the first attempt').to.have.length(1);
      expect(waited[0]!.error, 'the wait never finished').to.match(/^abandoned: lab infrastructure: node-a's emulated NIC/);
      expect(waited[0]!.durationMs, 'cut short where the interrupt came').to.be.below(30_000);
      expect(t.steps.map((s) => s.name), 'nothing of the first attempt in the retry').to.not.include(wait);
      process.stdout.write(`      measured: both attempts took ${Math.round(t.durationMs)} ms (the first one's wait alone was 120000); repairs before the retry: ${t.repairs.map((r) => `${r.node}: ${r.action}`).join('; ') || 'none'}\n`);
      expect(t.durationMs, 'the kmsg interrupt cut the 120 s wait short').to.be.below(90_000);
      expect(t.steps.map((s) => s.name)).to.include('the second attempt runs');
    } finally {
      rmSync(reports, { recursive: true, force: true });
    }
  });
});
