// Known issues must never hide anything else, and an unstable test is never a PASS. Runs fixture
// suites in child mocha processes on the VM lab and reads their reports and exit status.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunReport } from '../../harness/report/schema.ts';
import { KnownIssuesError, loadKnownIssues, kernelInRange } from '../../harness/known/known-issues.ts';
import { releaseSharedLab } from '../../harness/fixture/lab-session.ts';

function mocha(file: string, env: Record<string, string>, args: string[] = []): Promise<{ code: number | null; out: string }> {
  return new Promise((res, rej) => {
    const child = spawn('npx', ['mocha', ...args, file], { env: { ...process.env, NO_COLOR: '1', RDMA_FAILOVER_PDF: '0', RDMA_FAILOVER_TAGS: '', RDMA_FAILOVER_EXCLUDE_TAGS: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const timer = setTimeout(() => (child.kill('SIGKILL'), rej(new Error(`the fixture run did not finish within 400 s:\n${out}`))), 400_000);
    child.on('close', (code) => (clearTimeout(timer), res({ code, out })));
  });
}

function report(dir: string): RunReport {
  const run = readdirSync(dir).filter((d) => d !== 'latest').sort().pop()!;
  return JSON.parse(readFileSync(join(dir, run, 'report.json'), 'utf8')) as RunReport;
}

describe('honesty: known issues are strict, and repeats flag an unstable test', function () {
  this.timeout(900_000);
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rf-known-'));
    // The child runs use the lab: this process's session (and its monitors) lets go of it first.
    await releaseSharedLab({ keepLab: true });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const env = (reports: string) => ({ RDMA_FAILOVER_REPORTS: reports, RDMA_FAILOVER_KNOWN_ISSUES: 'test/fixtures/known-issues.fixture.yaml', RDMA_FAILOVER_RUN: '1' });

  it('only the known failure, on the kernel and transport named, is KNOWN; a pass, another failure or another kernel is news (exit 1)', async () => {
    const reports = join(dir, 'all');
    const r = await mocha('test/fixtures/specs/known.fixture.ts', env(reports));
    const rep = report(reports);
    const status = Object.fromEntries(rep.tests.map((t) => [t.planId, t.status]));
    expect(status).to.deep.equal({ 'CM-91': 'known-failure', 'CM-92': 'failed', 'CM-93': 'failed', 'CM-94': 'failed', 'CM-95': 'known-failure', 'CM-96': 'failed', 'CM-97': 'failed', 'CM-98': 'known-failure', 'CM-87': 'passed', 'CM-88': 'known-failure', 'CM-86': 'known-failure', 'CM-85': 'failed' });
    const t = (id: string) => rep.tests.find((x) => x.planId === id)!;
    expect(t('CM-92').error?.message).to.match(/KNOWN ISSUE DID NOT REPRODUCE: fixture-fixed-bug/);
    expect(t('CM-93').error?.message).to.match(/something else broke/).and.to.match(/a known issue exists for this test — fixture-other-bug .* but this failure is not it: new/);
    expect(t('CM-95').knownFailure).to.include({ id: 'fixture-this-kernel-bug', reference: 'https://example.invalid/bug/95' });
    expect(t('CM-95').knownFailure?.observed).to.match(/the known bug/);
    // The symptom alone is not enough where the issue names its mechanism.
    expect(t('CM-97').error?.message).to.match(/a known issue exists for this test — fixture-mechanism-bug .* but this failure is not it: new/);
    expect(t('CM-98').knownFailure).to.include({ id: 'fixture-mechanism-bug-seen' });
    // An intermittent issue: a pass is a PASS (noted), its failure is still KNOWN.
    expect(t('CM-87').attachments?.map((a) => a.body).join()).to.match(/intermittent known issue\(s\) fixture-intermittent-bug .* did not happen in this run/);
    expect(t('CM-88').knownFailure).to.include({ id: 'fixture-intermittent-bug-hit' });
    // Assertions that held on a node left unhealthy: matched like any failure (it was "did not reproduce").
    expect(t('CM-86').knownFailure).to.include({ id: 'fixture-hang-after-pass' });
    expect(t('CM-86').knownFailure?.observed).to.match(/not healthy afterwards[\s\S]*blocked for more than 20 seconds/);
    expect(t('CM-85').error?.message).to.match(/not healthy afterwards[\s\S]*a known issue exists for this test — fixture-hang-after-pass .* but this failure is not it: new/);
    expect(rep.summary.knownFailures).to.equal(5);
    expect(r.code, 'news: exit 1').to.equal(1);
    // The console tells them apart: KNOWN is not a tick, and says what happened.
    expect(r.out).to.match(/⚠ KNOWN FAILURE CM-91 fails the known way/).and.to.match(/what happened: .*the known bug/);
    expect(r.out).to.not.match(/✔ CM-91/);
    expect(r.out).to.match(/5 known failures: CM-91 → fixture-known-bug, CM-95 → fixture-this-kernel-bug, CM-98 → fixture-mechanism-bug-seen, CM-88 → fixture-intermittent-bug-hit, CM-86 → fixture-hang-after-pass/);
    expect(r.out).to.match(/\n1 passed, 6 failed, 0 skipped\n/);
    const junit = readFileSync(join(reports, readdirSync(reports).filter((d) => d !== 'latest').sort().pop()!, 'junit.xml'), 'utf8');
    expect(junit).to.match(/<skipped message="KNOWN FAILURE fixture-known-bug: the known bug happens \(a fixture\)"\/>/);
  });

  it('a run whose only failures are known exits 3, so a nightly job goes red only on news', async () => {
    const r = await mocha('test/fixtures/specs/known.fixture.ts', env(join(dir, 'known-only')), ['--grep', 'CM-91|CM-95']);
    expect(r.code, r.out.slice(-2000)).to.equal(3);
  });

  it('a test whose verdict changes between repeats is flagged unstable, with its pass rate, and the run fails', async () => {
    const reports = join(dir, 'unstable');
    const r = await mocha('test/fixtures/specs/unstable.fixture.ts', { ...env(reports), RDMA_FAILOVER_REPEAT: '4' });
    const rep = report(reports);
    const s = rep.summary.repeats?.[0];
    expect(s, r.out.slice(-3000)).to.include({ runs: 4, passed: 2, failed: 2, passRate: 0.5, unstable: true });
    expect(s?.verdicts).to.deep.equal(['passed', 'failed', 'passed', 'failed']);
    expect(r.out).to.match(/UNSTABLE 2 passed, 2 failed of 4 — CM-89/);
    expect(r.code).to.equal(1);
  });

  it('a known-issues file is validated with file:line:col, and kernel ranges compare release numbers', () => {
    const f = join(dir, 'bad.yaml');
    writeFileSync(f, '- id: x\n  test: RF-07\n  failure: "("\n  reference: r\n  summary: s\n- id: y\n  test: NOPE\n  failure: f\n  reference: r\n  summary: s\n');
    expect(() => loadKnownIssues(f)).to.throw(KnownIssuesError, /bad\.yaml:7:\d+: \/1\/test must match pattern/);
    expect(kernelInRange('6.1.0-57-amd64', { from: '6.1', before: '6.2' })).to.equal(true);
    expect(kernelInRange('6.12.95+deb12-amd64', { from: '6.1', before: '6.2' })).to.equal(false);
    expect(kernelInRange('6.1.0-57-amd64', { before: '6.1' })).to.equal(false);
    expect(kernelInRange('5.15.0', { from: '6.1' })).to.equal(false);
  });
});
