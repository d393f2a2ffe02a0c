// Reports: a real report.json recorded from a VM-lab suite run validates against the schema; the
// HTML renders in a real headless Chromium with one bar per phase; the PDF has pages; the JUnit XML
// is read by a real consumer (python3-junitparser); no secret reaches any output.
import { expect } from 'chai';
import { registerSecret } from '../../harness/secrets.ts';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { buildReport, redact, type CollectedTest } from '../../harness/report/build.ts';
import { readReport, ReportSchemaError, writeReports, CHROMIUM, validateReport } from '../../harness/report/write.ts';
import type { RunReport } from '../../harness/report/schema.ts';
import { checkTopologyText } from '../../harness/topology/load.ts';
import { secretsOf } from '../../harness/fixture/lab-session.ts';
import { cli } from '../support/cli.ts';

const FIXTURE = 'test/fixtures/reports/vm-run.report.json';

describe('reports', function () {
  this.timeout(120_000);
  let dir: string;
  let report: RunReport;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'rf-report-'));
    report = readReport(FIXTURE);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a report.json recorded from a VM-lab suite run validates against the published schema', () => {
    expect(report.run.topology?.kind).to.equal('vm');
    expect(report.tests.some((t) => t.timelines.length > 0), 'it has failover timelines').to.equal(true);
    expect(report.tests.map((t) => t.status)).to.include.members(['passed', 'skipped', 'known-failure']);
    expect(report.environment.length).to.be.greaterThan(0);
  });

  it('refuses to write a report that does not match its schema', async () => {
    const bad = JSON.parse(JSON.stringify(report)) as Record<string, unknown>;
    (bad.tests as Record<string, unknown>[])[0]!.status = 'mostly-passed';
    expect(() => validateReport(bad)).to.throw(ReportSchemaError, /status/);
    const err = await writeReports(bad as unknown as RunReport, { dir: join(dir, 'bad'), pdf: false }).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(ReportSchemaError);
  });

  it('renders the HTML in headless Chromium: one SVG bar per observed phase, and a screenshot', async () => {
    const w = await writeReports(report, { dir: join(dir, 'run'), pdf: true });
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
    try {
      const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
      const requests: string[] = [];
      page.on('request', (r) => requests.push(r.url()));
      await page.goto(`file://${w.html}`);
      const svgs = await page.$$('svg.timeline');
      const timelines = report.tests.flatMap((t) => t.timelines);
      expect(svgs.length).to.equal(timelines.length);
      for (const [i, tl] of timelines.entries()) {
        const bars = await svgs[i]!.$$eval('rect.phase', (rs) => rs.map((r) => r.getAttribute('data-phase') ?? ''));
        const seen = tl.phases.filter((p) => !p.missing).map((p) => p.id);
        expect([...bars].sort(), `timeline ${i}: ${tl.connection}`).to.deep.equal([...seen].sort());
      }
      const shot = await page.screenshot({ fullPage: false });
      expect(shot.length).to.be.greaterThan(10_000);
      expect(requests.filter((u) => !u.startsWith('file://')), 'self-contained: no network').to.deep.equal([]);
    } finally {
      await browser.close();
    }
    expect(w.pdf, w.pdfError).to.be.a('string');
    const info = execFileSync('pdfinfo', [w.pdf!], { encoding: 'utf8' });
    expect(Number(/Pages:\s+(\d+)/.exec(info)?.[1])).to.be.greaterThan(0);
  });

  it('JUnit XML is read by a real consumer (junitparser) with the right counts and messages', async () => {
    const w = await writeReports(report, { dir: join(dir, 'junit'), pdf: false });
    execFileSync('xmllint', ['--noout', w.junit]);
    const py = `
import json, sys
from junitparser import JUnitXml, Failure, Skipped
x = JUnitXml.fromfile(sys.argv[1])
out = {"tests": 0, "failures": 0, "skipped": 0, "messages": []}
for suite in x:
    for case in suite:
        out["tests"] += 1
        for r in case.result:
            if isinstance(r, Failure): out["failures"] += 1; out["messages"].append(r.message)
            if isinstance(r, Skipped): out["skipped"] += 1; out["messages"].append(r.message)
print(json.dumps(out))`;
    const got = JSON.parse(execFileSync('/usr/bin/python3', ['-c', py, w.junit], { encoding: 'utf8' })) as { tests: number; failures: number; skipped: number; messages: string[] };
    expect(got.tests).to.equal(report.summary.total);
    expect(got.failures).to.equal(report.summary.failed);
    // a known failure is a skip for CI engines (no "known" verdict there), carrying its reference
    expect(got.skipped).to.equal(report.summary.skipped + report.summary.knownFailures);
    expect(got.messages.filter((m) => m.startsWith('KNOWN FAILURE rping-ignores-addr-change'))).to.have.length(report.summary.knownFailures);
  });

  it('no secret in any output: key paths from the topology and key material are redacted', async () => {
    const topo = `name: secret-lab
kind: real
nodes:
  - name: n1
    access: { type: ssh, host: 10.0.0.9, identity_file: /srv/very-secret-keys/id_ed25519, host_key: { known_hosts: ~/.ssh/known_hosts } }
`;
    const { topology } = checkTopologyText(topo, '/srv/labs/secret.yaml');
    const secrets = secretsOf({ topology: topology!, file: '/srv/labs/secret.yaml', sha256: '0'.repeat(64), warnings: [] });
    const key = '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----';
    registerSecret('pdu-secret-4711');
    // a key printed line by line (a serial console, a kernel log) and a token, in an attachment
    const lines = ['-----BEGIN OPENSSH PRIVATE KEY-----', 'QyNTUxOQAAACDXh2HcTnR2dTDGcSuYVE2bfk7eKgNRF1R5hNmtM8m8AAAAAJgcJ7ZDHCe2', '-----END OPENSSH PRIVATE KEY-----'];
    const token = 'ZXlKaGJHY2lPaUpJVXpJMU5pSXNJblI1Y0NJNklrcFhWQ0o5LmV5SnpkV0lpT2lJeE1qTTBO';
    const record = { title: 'reach n1', steps: [], metrics: [], repairs: [], teardownErrors: [], health: [], attempts: [], attachments: [{ name: 'console', contentType: 'text/plain', body: [...lines, `token ${token}`].join('\n') }] };
    const tests: CollectedTest[] = [
      { title: 'reach n1', fullTitle: 'x reach n1', suite: 'x', state: 'failed', durationMs: 5, error: { message: `n1: cannot read /srv/very-secret-keys/id_ed25519: EACCES\n${key}\nipmitool -P pdu-secret-4711 failed` }, record },
    ];
    const r = redact(buildReport(tests, { environment: [], secrets }, { id: 'secret-run', startedAt: new Date(), finishedAt: new Date(), command: 'x' }), secrets);
    const w = await writeReports(r, { dir: join(dir, 'secret'), pdf: true });
    const pdfText = execFileSync('pdftotext', [w.pdf!, '-'], { encoding: 'utf8' });
    for (const out of [readFileSync(w.json, 'utf8'), readFileSync(w.junit, 'utf8'), readFileSync(w.html, 'utf8'), pdfText]) {
      expect(out).to.not.include('very-secret-keys');
      expect(out).to.not.include('b3BlbnNzaC1rZXktdjEAAAAABG5vbmU');
      expect(out).to.not.include('pdu-secret-4711');
      expect(out).to.not.include('QyNTUxOQAAACDXh2HcTnR2dTDGcSuYVE2bfk7eKgNRF1R5');
      expect(out).to.not.include(token.slice(0, 40));
      expect(out).to.include('[redacted');
    }
  });

  it('`rdma-failover report` regenerates from report.json; `compare` flags an outage regression', async () => {
    const a = join(dir, 'A');
    const b = join(dir, 'B');
    cpSync(FIXTURE, join(a, 'report.json'), { recursive: true });
    const slower = JSON.parse(JSON.stringify(report)) as RunReport;
    const t = slower.tests.find((x) => x.status === 'passed' && x.timelines.some((tl) => tl.summary.ioResumedMs !== undefined))!;
    for (const tl of t.timelines) if (tl.summary.ioResumedMs !== undefined) tl.summary.ioResumedMs += 500;
    cpSync(FIXTURE, join(b, 'report.json'));
    writeFileSync(join(b, 'report.json'), JSON.stringify(slower));
    const regen = await cli(['report', '--no-pdf', a]);
    expect(regen.code, regen.stderr).to.equal(0);
    expect(readFileSync(join(a, 'report.html'), 'utf8')).to.include('<svg');
    const same = await cli(['compare', a, a]);
    expect(same.code).to.equal(0);
    const cmp = await cli(['compare', a, b]);
    expect(cmp.code).to.equal(1);
    expect(cmp.stdout).to.match(/REGRESSION .* I\/O resumed: .* \+500 ms/);
  });
});
