// The VM lab for real: boot, doctor, fabric, RDMA CM over rxe-on-bond, a real carrier loss,
// a new connection over the new active slave, and a teardown that leaves nothing behind.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { netnsList, hostTaps } from '../support/lab.ts';
import { existsSync, readFileSync } from 'node:fs';
import { cli } from '../support/cli.ts';
import { loadTopology } from '../../harness/topology/load.ts';
import { attachVmLab, labIdFor } from '../../harness/vmlab/vm-lab.ts';
import { readState, statePath } from '../../harness/vmlab/state.ts';
import { isOurGuest } from '../../harness/vmlab/qemu.ts';
import { readBond } from '../../harness/fabric/bond.ts';
import { rpingOnce } from '../../harness/smoke.ts';
import { sleep } from '../../harness/clock.ts';

const TOPO = 'topologies/vm-rxe.yaml';

describe('VM lab lifecycle (real QEMU guests, rdma_rxe over an active-backup bond)', function () {
  this.timeout(300_000);
  const labName = loadTopology(TOPO).topology.name;
  const labId = labIdFor(labName);

  before(async () => {
    // Start from nothing, so this test proves boot and teardown themselves.
    await cli(['lab', 'down', TOPO], { timeoutMs: 60_000 });
  });

  it('boots, passes the doctor, carries RDMA CM over the bond through a real carrier loss, and leaves nothing behind', async () => {
    const up = await cli(['lab', 'up', TOPO], { timeoutMs: 240_000 });
    expect(up.code, up.stderr).to.equal(0);
    const state = readState(labName)!;
    expect(state.phase).to.equal('up');
    const pids = state.guests.map((g) => g.pid!);

    const doc = await cli(['doctor', '--json', TOPO], { timeoutMs: 120_000 });
    const report = JSON.parse(doc.stdout) as { ok: boolean; nodes: { kernel: string; checks: { id: string; status: string }[] }[] };
    expect(report.ok, doc.stdout).to.equal(true);
    for (const n of report.nodes) {
      expect(n.checks.filter((c) => c.status === 'fail'), n.kernel).to.deep.equal([]);
      for (const m of ['bonding', 'rdma_rxe', 'rdma_cm', 'rds_rdma', 'ib_iser', 'rpcrdma', 'nvme_rdma']) {
        expect(n.checks.find((c) => c.id === `module:${m}`)?.status, m).to.equal('ok');
      }
    }

    const fab = await cli(['fabric', 'up', TOPO], { timeoutMs: 120_000 });
    expect(fab.code, fab.stderr).to.equal(0);
    expect(fab.stdout).to.match(/node-a: rxe0\/1 ACTIVE on bond0/);

    const lab = attachVmLab(loadTopology(TOPO));
    try {
      const a = lab.node('node-a');
      const b = lab.node('node-b');
      // virtio_net frees sent skbs at once (napi_tx=0, see harness/vmlab/guest.ts): rxe's QPs are not held by a ring
      for (const n of [a, b]) expect((await n.readFile('/sys/module/virtio_net/parameters/napi_tx')).trim(), `${n.name}: virtio_net napi_tx`).to.equal('N');
      const before = await readBond(a, 'bond0');
      expect(before.mode).to.equal('active-backup');
      expect(before.failOverMac).to.equal('active');
      const first = await rpingOnce(a, b, '192.168.50.2');
      expect(first.ok, first.output).to.equal(true);

      await lab.carrier.cut('node-a', before.activeSlave);
      let after = before;
      for (let i = 0; i < 100 && (after.activeSlave === before.activeSlave || !after.activeSlave); i++) {
        await sleep(100);
        after = await readBond(a, 'bond0');
      }
      expect(after.activeSlave, 'the bond moved to the other slave').to.not.equal(before.activeSlave);
      expect(before.slaves).to.include(after.activeSlave);
      expect(after.address, 'fail_over_mac=active: the bond address follows the new active slave').to.not.equal(before.address);
      const slaveMac = (await a.readFile(`/sys/class/net/${after.activeSlave}/address`)).trim();
      expect(after.address).to.equal(slaveMac);

      const second = await rpingOnce(a, b, '192.168.50.2', 3, 7190);
      expect(second.ok, second.output).to.equal(true);
      await lab.carrier.restore('node-a', before.activeSlave);
      // the NIC reports link a moment after QEMU's set_link (e1000: its watchdog, up to 2 s)
      let carrier = '';
      for (let i = 0; i < 50 && carrier !== '1'; i++) {
        if (i) await sleep(200);
        carrier = (await a.readFile(`/sys/class/net/${before.activeSlave}/carrier`)).trim();
      }
      expect(carrier).to.equal('1');
    } finally {
      await lab.close();
    }

    const down = await cli(['lab', 'down', TOPO], { timeoutMs: 60_000 });
    expect(down.code, down.stderr).to.equal(0);
    for (const [i, pid] of pids.entries()) expect(isOurGuest(pid, labId, state.guests[i]!.name), `guest pid ${pid}`).to.equal(false);
    expect(netnsList()).to.not.include(state.netns);
    expect(hostTaps(labId)).to.deep.equal([]);
    expect(existsSync(statePath(labName))).to.equal(false);
  });

  it('cleans up after a runner killed with SIGKILL in the middle of lab up, and the next lab up succeeds', async () => {
    const child = spawn('bin/rdma-failover.js', ['lab', 'up', TOPO], { stdio: 'ignore' });
    // Kill it once the guests are booting (QEMU started, state written), before they are up.
    for (let i = 0; i < 600; i++) {
      const s = readState(labName);
      if (s?.guests.length && s.guests.every((g) => g.pid) && s.phase === 'creating') break;
      await sleep(50);
    }
    const mid = readState(labName)!;
    expect(mid.phase, 'killed while creating').to.equal('creating');
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const orphans = mid.guests.map((g) => g.pid!);
    expect(orphans.some((pid) => isOurGuest(pid, labId, mid.guests[0]!.name) || isOurGuest(pid, labId, mid.guests[1]!.name)), 'QEMU outlived its runner').to.equal(true);

    const st = await cli(['lab', 'status', TOPO]);
    expect(st.stdout).to.match(/STALE/);

    const up = await cli(['lab', 'up', TOPO], { timeoutMs: 240_000 });
    expect(up.code, up.stderr).to.equal(0);
    expect(up.stderr).to.match(/cleaning a stale lab/);
    for (const [i, pid] of orphans.entries()) expect(isOurGuest(pid, labId, mid.guests[i]!.name), `orphan ${pid} was ended`).to.equal(false);
    const now = readState(labName)!;
    expect(now.phase).to.equal('up');
    const s2 = await cli(['lab', 'status', '--json', TOPO]);
    expect((JSON.parse(s2.stdout) as { stale: boolean }).stale).to.equal(false);
    // The lab stays up: the suites that follow reuse it (the run's teardown takes it down).
    expect(readFileSync(now.guests[0]!.consoleLog, 'utf8')).to.include('rf-guest: stage 2 done');
  });
});
