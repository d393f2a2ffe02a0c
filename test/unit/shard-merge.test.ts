// Shards, merged reports and reruns: pure logic on recorded reports (the VM-lab run that compares a
// sharded run with an unsharded one is in test/lab/shards.test.ts).
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { inShard, parseShard, shardFrom, shardOf } from '../../harness/run/shard.ts';
import { rerunSelection } from '../../harness/run/rerun.ts';
import { mergeReports, MergeError } from '../../harness/report/merge.ts';
import { validateReport } from '../../harness/report/write.ts';
import type { RunReport } from '../../harness/report/schema.ts';

const report = JSON.parse(readFileSync('test/fixtures/reports/vm-run.report.json', 'utf8')) as RunReport;

describe('shards', () => {
  const keys = Array.from({ length: 200 }, (_, i) => `suite ${i % 7} RF-${String(i % 10).padStart(2, '0')} test ${i}`);

  it('every test lands in exactly one shard, the same one every time, whatever else is selected', () => {
    for (const n of [1, 2, 3, 5]) {
      const owners = keys.map((k) => [1, 2, 3, 4, 5].slice(0, n).filter((i) => inShard(k, { index: i, total: n })));
      expect(owners.every((o) => o.length === 1), `${n} shards`).to.equal(true);
      expect(keys.map((k) => shardOf(k, n))).to.deep.equal(keys.map((k) => shardOf(k, n)));
    }
    // Adding tests does not move the others.
    const before = keys.slice(0, 100).map((k) => shardOf(k, 4));
    expect(keys.slice(0, 100).map((k) => shardOf(k, 4))).to.deep.equal(before);
  });

  it('shards stay balanced (hash by test, not by file)', () => {
    const counts = [1, 2, 3, 4].map((i) => keys.filter((k) => shardOf(k, 4) === i).length);
    expect(Math.max(...counts) - Math.min(...counts), JSON.stringify(counts)).to.be.below(25);
  });

  it('--shard i/n is checked; CI_NODE_INDEX/CI_NODE_TOTAL are the default', () => {
    expect(parseShard('2/3')).to.deep.equal({ index: 2, total: 3 });
    for (const bad of ['0/3', '4/3', '1/0', 'x', '1-2']) expect(() => parseShard(bad), bad).to.throw(/1 ≤ i ≤ n/);
    expect(shardFrom(undefined, { CI_NODE_INDEX: '2', CI_NODE_TOTAL: '4' })).to.deep.equal({ index: 2, total: 4 });
    expect(shardFrom('1/2', { CI_NODE_INDEX: '2', CI_NODE_TOTAL: '4' })).to.deep.equal({ index: 1, total: 2 });
    expect(shardFrom(undefined, {})).to.equal(undefined);
  });
});

/** The fixture run cut in two as if two shards had run it. */
function shards(): [RunReport, RunReport] {
  const half = (part: 0 | 1, shard: string): RunReport => ({ ...report, run: { ...report.run, id: `${report.run.id}-s${part + 1}`, shard }, tests: report.tests.filter((_, i) => i % 2 === part) });
  return [half(0, '1/2'), half(1, '2/2')];
}

describe('report merge', () => {
  it('two shards merge into the same test set and verdicts as the whole run, each test with its provenance', () => {
    const m = mergeReports(shards());
    validateReport(m);
    const verdicts = (r: RunReport) => r.tests.map((t) => `${t.fullTitle} → ${t.status}`).sort();
    expect(verdicts(m)).to.deep.equal(verdicts(report));
    expect(m.summary).to.include({ total: report.summary.total, passed: report.summary.passed, knownFailures: report.summary.knownFailures, skipped: report.summary.skipped });
    expect(m.run.merged).to.deep.equal([`${report.run.id}-s1`, `${report.run.id}-s2`]);
    expect(m.tests[0]!.provenance).to.deep.equal({ run: `${report.run.id}-s1`, shard: '1/2', lab: 'vm-rxe', kernel: 'debian-stable:6.1.0-56-amd64' });
    // the run's guest kernel, as the whole run's report has it (compared by `verdicts`)
    expect(m.run.kernel).to.equal(report.run.kernel).and.to.equal('debian-stable:6.1.0-56-amd64');
  });

  it('refuses runs of another harness version or topology (says which), unless forced', () => {
    const [a, b] = shards();
    const other = { ...b, run: { ...b.run, gitCommit: 'ffffffffffff' } };
    expect(() => mergeReports([a, other])).to.throw(MergeError, /not comparable .*--force[\s\S]*harness 0\.1\.0 \(ffffffffffff\)/);
    const topo = { ...b, run: { ...b.run, topology: { ...b.run.topology!, sha256: '0'.repeat(64) } } };
    expect(() => mergeReports([a, topo])).to.throw(MergeError, /topology vm-rxe/);
    expect(mergeReports([a, other], { force: true }).summary.total).to.equal(report.summary.total);
  });

  it('the same test in two shards of one kernel is a clash; on two kernels (a matrix) it is two results', () => {
    expect(() => mergeReports([report, { ...report, run: { ...report.run, id: 'again' } }])).to.throw(MergeError, /is in both/);
    const other = { ...report, run: { ...report.run, id: 'bpo', kernel: 'debian-backports:6.12.0-0.bpo-amd64' } };
    const matrix = mergeReports([report, other], { force: true });
    expect(matrix.summary.total).to.equal(2 * report.summary.total);
    expect(matrix.run.kernel, 'two kernels: no one kernel for the run').to.equal(undefined);
  });
});

describe('--rerun-failed', () => {
  it('selects the failed tests by exact title, and the files they came from', () => {
    const failed = { ...report, tests: report.tests.map((t, i) => (i === 3 ? { ...t, status: 'failed' as const } : t)) };
    const sel = rerunSelection(failed);
    expect(sel.titles).to.deep.equal([report.tests[3]!.fullTitle]);
    expect(new RegExp(sel.grep).test(report.tests[3]!.fullTitle)).to.equal(true);
    expect(new RegExp(sel.grep).test(`${report.tests[3]!.fullTitle} [repeat 2/3]`)).to.equal(true);
    expect(report.tests.filter((_, i) => i !== 3).some((t) => new RegExp(sel.grep).test(t.fullTitle))).to.equal(false);
    expect(rerunSelection(report).titles).to.deep.equal([]);
  });

  it('a test whose node died is rerun too, even if it had passed its assertions', () => {
    const dead = { ...report, tests: report.tests.map((t, i) => (i === 0 ? { ...t, health: [{ node: 'node-a', kind: 'unresponsive' as const, detail: 'no answer', evidence: [] }] } : t)) };
    expect(rerunSelection(dead).titles).to.deep.equal([report.tests[0]!.fullTitle]);
  });
});
