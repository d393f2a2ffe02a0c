// Expected failures must never hide anything else: a strict xfail passes only when the test fails
// the known way (on the kernels the expectation names); an unexpected pass or another failure FAILS.
// Runs a fixture suite in a child mocha on the real lab and reads its report.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunReport } from '../../harness/report/schema.ts';

function mocha(file: string, env: Record<string, string>): Promise<number | null> {
  return new Promise((res, rej) => {
    const child = spawn('npx', ['mocha', file], { env: { ...process.env, ...env }, stdio: 'ignore' });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      rej(new Error('the fixture run did not finish within 300 s'));
    }, 300_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      res(code);
    });
  });
}

describe('honesty: expected failures are strict', function () {
  this.timeout(360_000);
  it('only the known failure on the named kernels is an expected failure; a pass, another failure or another kernel FAIL', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rf-xfail-'));
    try {
      const code = await mocha('test/fixtures/specs/xfail.fixture.ts', { RDMA_FAILOVER_REPORTS: dir, RDMA_FAILOVER_PDF: '0', RDMA_FAILOVER_TAGS: '', RDMA_FAILOVER_EXCLUDE_TAGS: '' });
      const run = readdirSync(dir).filter((d) => d !== 'latest').sort().pop()!;
      const rep = JSON.parse(readFileSync(join(dir, run, 'report.json'), 'utf8')) as RunReport;
      const status = Object.fromEntries(rep.tests.map((t) => [t.title, t.status]));
      expect(status).to.deep.equal({
        'fails the known way': 'expected-failure',
        'passes although a failure is expected': 'failed',
        'fails another way': 'failed',
        'fails the known way on a kernel the expectation is not for': 'failed',
        'fails the known way on a kernel the expectation is for': 'expected-failure',
      });
      expect(code, 'the run fails').to.equal(3);
      const pass = rep.tests.find((t) => t.title === 'passes although a failure is expected')!;
      expect(pass.error?.message).to.match(/expected failure did not happen \(a known bug\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
