// Honesty for the storage ULPs, for real in the VM lab: data changed behind the ULP's back fails
// the verification; a target that disappears during the outage fails the test in bounded time
// (never a hang, never a pass).
import { expect } from 'chai';
import { suite, test, type TestContext } from '../../harness/fixture/test.ts';
import { BothDown } from '../../harness/fault/fault.ts';
import { IserWorkload } from '../../harness/workload/iser.ts';
import { NfsWorkload } from '../../harness/workload/nfs.ts';
import { NvmeWorkload } from '../../harness/workload/nvme.ts';
import { progressPast, type Workload } from '../../harness/workload/workload.ts';
import { now } from '../../harness/clock.ts';
import { nvme as nvmeUlp } from '../../harness/ulp/nvme.ts';
import * as storage from '../../suites/lib/storage.ts';
import { knownWarning } from '../../harness/known/known-issues.ts';

// iSER's logout may trip 6.1's WARN_ONCE false positive (known-issues.yaml): the certification
// tests list it as a known issue; these tests have no plan ID, so they allow exactly that warning.
const ISCSI_UNBIND_WARNING = knownWarning('workqueue-warns-iscsi-unbind-cancels-pm-work', 2);

function failureOf(check: () => void): string {
  try {
    check();
  } catch (e) {
    if ((e as Error).name !== 'AssertionError') throw e;
    return (e as Error).message;
  }
  throw new Error('the assertion passed on broken behaviour: a false PASS');
}

async function corrupted(t: TestContext, w: Workload, corrupt: () => Promise<void>): Promise<string> {
  await t.monitor();
  await w.start();
  // fio is capped at 2 MiB/s here, so the corruption (at 4 MiB, once fio wrote past 6 MiB) lands
  // ~13 s before fio's read-back reaches it: a slow dd cannot race the check.
  await t.step('let fio write past the region', () => progressPast(w, 6 * 2 ** 20, 60_000));
  await t.step('corrupt the data behind the ULP', corrupt);
  const ev = await t.evidence({ results: [await w.finish()] });
  return failureOf(() => expect(ev).to.have.deliveredEverything());
}

suite('honesty: storage data checks and unreachable targets (VM lab, for real)', { requires: { nodes: 2, capabilities: ['carrier'], tools: ['fio'] } }, () => {
  test('iSER: blocks overwritten in the target backstore fail the verification', async (t) => {
    const [i, tg] = t.pair(['initiator', 'target']);
    const w = await t.workload('iser', () => new IserWorkload(t.lab, { initiator: i, target: tg, sizeMiB: 32, loops: 1, rateMiBs: 2 }).setup());
    expect(await corrupted(t, w, () => w.corruptBackstore())).to.match(/verify error|error [1-9]/);
  }, { timeoutMs: 600_000, requires: { modules: ['ib_iser', 'ib_isert'] }, allowHealth: [ISCSI_UNBIND_WARNING] });

  test('NFS over RDMA: bytes overwritten in the exported file fail the verification', async (t) => {
    const [c, s] = t.pair(['client', 'server']);
    const w = await t.workload('nfs', () => new NfsWorkload(t.lab, { client: c, server: s, sizeMiB: 32, loops: 1, rateMiBs: 2 }).setup());
    expect(await corrupted(t, w, () => w.corruptExport())).to.match(/verify error|error [1-9]/);
  }, { timeoutMs: 600_000, requires: { modules: ['rpcrdma', 'nfsd'] } });

  test('NVMe/RDMA: blocks overwritten in the namespace file fail the verification', async (t) => {
    const [h, tg] = t.pair(['initiator', 'target']);
    const w = await t.workload('nvme', () => new NvmeWorkload(t.lab, { host: h, target: tg, sizeMiB: 32, loops: 1, rateMiBs: 2 }).setup());
    expect(await corrupted(t, w, () => w.corruptNamespace())).to.match(/verify error|error [1-9]/);
  }, { timeoutMs: 600_000, requires: { modules: ['nvme_rdma', 'nvmet_rdma'] } });

  // RF-03 long's verdict rests on the ULP giving up by itself during the outage. A host told to
  // keep trying (ctrl_loss_tmo 600 s, the default) does not: the test must fail and say so, not pass
  // because I/O resumed once the links came back.
  test('RF-03 long: a host that never gives up during the outage fails the test, which names it', async (t) => {
    const keepsTrying = storage.storageUlp({
      ulp: 'nvme',
      roles: ['initiator', 'target'],
      sides: ['host', 'target'],
      step: 8 * 2 ** 20,
      make: (t, host, target) => new NvmeWorkload(t.lab, { host, target, sizeMiB: 32, reconnectDelayS: 1 }).setup(),
      makeGivingUp: (t, host, target) => new NvmeWorkload(t.lab, { host, target, sizeMiB: 32, reconnectDelayS: 1, ctrlLossTmoS: 600 }).setup(),
      liveness: nvmeUlp.liveness,
    });
    const msg = await storage.bothDownLong(keepsTrying)(t).then(
      () => 'passed',
      (e: Error) => (e.name === 'AssertionError' ? e.message : `not an assertion: ${e.message}`),
    );
    expect(msg).to.match(/the nvme workload did not give up within the \d+ ms outage/);
  }, { timeoutMs: 600_000, requires: { modules: ['nvme_rdma', 'nvmet_rdma'] } });

  for (const ulp of ['nvme', 'iser'] as const) {
    test(`${ulp}: the target removed during the outage: FAIL with the reason within bounded time`, async (t) => {
      const [c, s] = t.pair(['initiator', 'target']);
      // iSER gives up after replacement_timeout: short here, so the stuck I/O ends with errors.
      const w =
        ulp === 'nvme'
          ? await t.workload('nvme', () => new NvmeWorkload(t.lab, { host: c, target: s, sizeMiB: 32, loops: 20, ctrlLossTmoS: 20 }).setup())
          : await t.workload('iser', () => new IserWorkload(t.lab, { initiator: c, target: s, sizeMiB: 32, loops: 20, replacementTimeoutS: 15 }).setup());
      await t.monitor();
      await w.start();
      await progressPast(w, 8 * 2 ** 20, 60_000);
      // Both links down first, so the target is gone before the initiator can reach it again.
      const bond = await t.bond(c);
      const both = new BothDown(c, bond.name, bond.slaves, 2000);
      await t.inject(both);
      await t.step('the target goes away during the outage', () => w.removeTarget());
      await t.heal(both);
      const budget = 20_000;
      const t0 = now();
      const resumed = await progressPast(w, w.done + 4 * 2 ** 20, budget).then(
        () => true,
        () => false,
      );
      expect(resumed, 'I/O cannot resume: the target is gone').to.equal(false);
      const result = await t.step('the workload ends (bounded)', () => w.finish(60_000));
      const ev = await t.evidence({ results: [result] });
      const msg = failureOf(() => expect(ev).to.have.reconnected(ulp, { within: budget }));
      expect(msg).to.match(/no I\/O resumed|did not resume/);
      expect(now() - t0, 'bounded').to.be.lessThan(budget + 120_000);
    }, {
      timeoutMs: 600_000,
      requires: { modules: ulp === 'nvme' ? ['nvme_rdma', 'nvmet_rdma'] : ['ib_iser', 'ib_isert'] },
      // A target that vanishes mid-session leaves iSER's cleanup waiting (seen on 6.1): recorded, and
      // the VM lab reboots the node before the next test.
      allowHealth: [
        { kind: 'd-state', pattern: 'iser_release_work|iscsi', reason: 'the target vanished mid-session on purpose: iSER cleanup blocks' },
        { kind: 'kernel-log', pattern: 'iser_release_work|I/O error|conn error|offlined', reason: 'the target vanished mid-session on purpose: hung iSER cleanup and I/O errors are logged' },
        // the serial console may hold only the hung-task line of iSER's cleanup worker (no stack)
        ...(ulp === 'iser'
          ? [{ kind: 'kernel-log' as const, pattern: '^serial console: INFO: task kworker/\\S+ blocked for more than \\d+ seconds', reason: 'the target vanished mid-session on purpose: the iSER cleanup worker blocks (hung-task line on the console)' }, ISCSI_UNBIND_WARNING]
          : []),
      ],
    });
  }
});
