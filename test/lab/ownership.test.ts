// A lab is not the harness's: it creates, changes and removes only objects it named itself. The
// user's own storage objects planted before a whole certification run and compared byte for byte
// after it: test/reallab/vm-as-real.test.ts (the quick certification through the real-lab path, on
// guests carrying test/support/user-objects.ts). Here: a user's target where the harness would put
// its own, so the harness must refuse rather than take it over.
import { suite, test, expect as fexpect } from '../../harness/fixture/test.ts';
import { SrpWorkload } from '../../harness/workload/srp.ts';
import { LabPreconditionError } from '../../harness/workload/block-storage.ts';
import { T } from '../support/user-objects.ts';

// A target of the user's on the bond's own RDMA port: ib_srpt's enable is per port, so the harness
// cannot run SRP there without disabling it. The test is skipped with that reason; nothing changes.
suite('SRP on an RDMA port that already carries a user\'s target', { requires: { nodes: 2, modules: ['ib_srpt'] } }, () => {
  test('the SRP workload refuses (a lab precondition), and the user\'s target is untouched', async (t) => {
    const [initiator, target] = t.pair(['initiator', 'target']);
    const tn = t.node(target);
    const plant = `modprobe ib_srpt; g=$(cat /sys/class/infiniband/rxe0/ports/1/gids/0); d=${T}/srpt/\${g#fe80:0000:0000:0000:}/user_tpg; mkdir -p "$d"; echo "$d"`;
    const dirOf = (await tn.run(['sh', '-c', plant])).stdout.trim();
    t.scope.defer('remove the planted target', async () => void (await tn.run(['sh', '-c', 'rmdir "$1" "$(dirname "$1")"', 'rm', dirOf])));
    const before = (await tn.run(['sh', '-c', `find ${T}/srpt | sort`])).stdout;
    const err = await new SrpWorkload(t.lab, { initiator, target, sizeMiB: 8 }).setup().then(
      (w) => w.teardown().then(() => undefined),
      (e: unknown) => e,
    );
    fexpect(err).to.be.instanceOf(LabPreconditionError);
    fexpect((err as Error).message).to.match(/already has a target on the bond's RDMA port/);
    fexpect((await tn.run(['sh', '-c', `find ${T}/srpt | sort`])).stdout).to.equal(before);
  });
});
