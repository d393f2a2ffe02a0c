// UL-ISER-01 — iSER (iSCSI over RDMA): an LIO target, an open-iscsi initiator on an iser iface,
// fio with verification on the disk while the active link fails. iscsid logs in again by itself;
// replacement_timeout is set above the test window so I/O queues instead of failing.
import { suite } from '../harness/fixture/test.ts';
import { IserWorkload } from '../harness/workload/iser.ts';
import { storageTests } from './lib/storage.ts';

suite('UL-ISER-01 iSER survives the loss of the active link', { requires: { nodes: 2, modules: ['ib_iser', 'ib_isert'], tools: ['iscsiadm', 'fio'], capabilities: ['carrier'] } }, () => {
  storageTests({
    ulp: 'iser',
    id: 'UL-ISER-01',
    roles: ['initiator', 'target'],
    sides: ['initiator', 'target'],
    step: 8 * 2 ** 20,
    // After iser_connect_error the connection is TERMINATING and every task is refused (-ENODEV),
    // the NOP-Out included: libiscsi's ping can no longer find out the connection is dead.
    mustActOnUnreachable:
      'iSER marks the connection TERMINATING without telling libiscsi (iser_verbs.c iser_cma_handler → iser_connect_error), then refuses every task with -ENODEV, the NOP-Out included ("Could not send nopout"): only a NOP-Out already in flight can still time out and start recovery.',
    make: (t, initiator, target) => {
      const w = t.topology.workloads?.iser;
      return new IserWorkload(t.lab, { initiator, target, sizeMiB: w?.size_mib ?? 48, replacementTimeoutS: w?.replacement_timeout_s ?? 120 }).setup();
    },
  });
});
