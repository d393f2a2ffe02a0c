// A failed test's report keeps what tracing it after the run needs: the kernel log, the RDMA CM's
// trace and the cm_ids that existed when the monitors started (a recorded RDS failover's evidence).
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { buildReport, type CollectedTest } from '../../harness/report/build.ts';
import type { Evidence } from '../../harness/assert/evidence.ts';

const evidence = JSON.parse(readFileSync('test/fixtures/recorded/evidence-rds-client-failover.json', 'utf8')) as Evidence;

function attachmentsOf(state: CollectedTest['state']) {
  const record = { title: 'UL-RDS-01 x', steps: [], metrics: [], repairs: [], teardownErrors: [], health: [], attempts: [], attachments: [], evidence };
  const test: CollectedTest = { title: 'UL-RDS-01 x', fullTitle: 's UL-RDS-01 x', suite: 's', state, durationMs: 1, ...(state === 'failed' ? { error: { message: 'x' } } : {}), record };
  const r = buildReport([test], { environment: [], secrets: [] }, { id: 'r', startedAt: new Date(), finishedAt: new Date(), command: 'x' });
  return new Map(r.tests[0]!.attachments.map((a) => [a.name, String(a.body)]));
}

describe('a failed test\'s report attachments', () => {
  it('the kernel log, the RDMA CM trace (raw tracepoint lines, per node) and the first cm_id snapshot', () => {
    const a = attachmentsOf('failed');
    expect(a.get('kernel log during the test')).to.match(/^node-[ab] \[\s*\d+\.\d{6}\] /m);
    expect(a.get('RDMA CM trace during the test')).to.match(/^node-a .*cm_event_handler: cm\.id=\d+ .* ADDR_RESOLVED/m);
    expect(a.get('cm_ids when the monitors started (rdma res)')).to.include('node-b cm-idn 0 LISTEN rds_rdma 0.0.0.0:18634 → -');
  });

  it('a passed test carries none of them (reports stay small)', () => {
    const a = attachmentsOf('passed');
    expect([...a.keys()]).to.deep.equal([]);
  });
});
