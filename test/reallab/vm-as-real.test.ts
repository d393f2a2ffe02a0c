// The real-lab path end to end, against machines the run did not boot: the running VM lab's guests
// driven as a real lab — a `kind: real` topology, plain SSH with a known_hosts file made by
// ssh-keyscan, each slave's carrier cut and restored by argv commands on the controller
// (`rdma-failover lab link`, playing a switch CLI). The harness's real-lab code cannot tell.
// The guests carry the user's own storage objects (test/support/user-objects.ts) through the whole
// quick certification: a real lab is someone else's, and every byte of them must be as it was.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { releaseSharedLab } from '../../harness/fixture/lab-session.ts';
import { listJournals } from '../../harness/journal.ts';
import type { DoctorReport } from '../../harness/doctor/doctor.ts';
import type { RunReport } from '../../harness/report/schema.ts';
import { loadTopology } from '../../harness/topology/load.ts';
import { labUp, type VmLab } from '../../harness/vmlab/vm-lab.ts';
import { qmp } from '../../harness/vmlab/qmp.ts';
import { cli } from '../support/cli.ts';
import { changed, moduleChanges, modules, ours, plant, snapshot, unplant } from '../support/user-objects.ts';

const VM_TOPOLOGY = 'topologies/vm-rxe.yaml';

/** Child runs see every test and write their own reports. */
function childEnv(reports: string): Record<string, string> {
  return { RDMA_FAILOVER_EXCLUDE_TAGS: '', RDMA_FAILOVER_TAGS: '', RDMA_FAILOVER_REPORTS: reports, RDMA_FAILOVER_PDF: '0' };
}

function latestReport(dir: string): RunReport {
  const run = readdirSync(dir).filter((d) => d !== 'latest' && existsSync(join(dir, d, 'report.json'))).sort().pop();
  if (!run) throw new Error(`no report in ${dir}`);
  return JSON.parse(readFileSync(join(dir, run, 'report.json'), 'utf8')) as RunReport;
}

/** What the harness may leave on a node: nothing of its own. */
const LEFTOVERS = `ip -j link show bond0 >/dev/null 2>&1 && echo "bond0 still exists"
for i in /sys/kernel/tracing/instances/rf-*; do [ -e "$i" ] && echo "trace instance $i"; done
ps -eo args= | grep -E 'tcpdump -l -n -tt|ip -o -ts monitor|dmesg -W -r|bondpoll|respoll|trace_pipe|rf-verify|--run-id|rping ' | grep -v grep | sed 's/^/process: /'
true`;

describe('a real lab: the VM guests driven through plain SSH and carrier commands', function () {
  this.timeout(1_800_000);
  let dir: string;
  let topo: string;
  let vm: VmLab;

  const loadedModules = async (): Promise<Record<string, string[]>> =>
    Object.fromEntries(await Promise.all([...vm.nodes.values()].map(async (n) => [n.name, (await n.run(['cut', '-d', ' ', '-f1', '/proc/modules'], { timeoutMs: 30_000 })).stdout.split('\n').filter(Boolean)] as const)));
  const leftovers = async (): Promise<string[]> =>
    (await Promise.all([...vm.nodes.values()].map(async (n) => (await n.run(['sh', '-c', LEFTOVERS], { timeoutMs: 30_000 })).stdout.split('\n').filter(Boolean).map((l) => `${n.name}: ${l}`)))).flat();

  before(async function () {
    this.timeout(600_000);
    // This run's own VM session lets go of its fabric: the guests are driven as someone else's lab now.
    await releaseSharedLab({ keepLab: true });
    vm = await labUp(loadTopology(VM_TOPOLOGY));
    await plant(vm.node('node-b'), vm.node('node-a'));
    dir = mkdtempSync(join(tmpdir(), 'rf-real-'));
    const r = await cli(['lab', 'as-real', VM_TOPOLOGY, '-o', dir], { timeoutMs: 120_000 });
    expect(r.code, r.stderr).to.equal(0);
    topo = r.stdout.trim();
    expect(readFileSync(topo, 'utf8')).to.match(/kind: real/);
  });
  after(async () => {
    const g = vm?.state.guests.find((x) => x.name === 'node-b');
    if (g) await qmp(g.qmpSocket, 'cont').catch(() => undefined);
    if (vm) await unplant(vm.node('node-b'), vm.node('node-a'));
    await vm?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('doctor -t reports both nodes, their kernel, each carrier command, and the powers a real lab lacks', async () => {
    const r = await cli(['doctor', '-t', topo, '--json'], { timeoutMs: 120_000 });
    expect(r.code, r.stdout + r.stderr).to.equal(0);
    const d = JSON.parse(r.stdout) as DoctorReport;
    expect(d.kind).to.equal('real');
    expect(d.nodes.map((n) => [n.node, n.reachable])).to.deep.equal([['node-a', true], ['node-b', true]]);
    for (const n of d.nodes) {
      expect(n.kernel).to.match(/^6\./);
      expect(n.address).to.match(/^root@127\.0\.0\.1:\d+$/);
      const carriers = n.checks.filter((c) => c.id.startsWith('carrier:'));
      expect(carriers.map((c) => [c.id, c.status])).to.deep.equal([['carrier:bond0/eth0', 'ok'], ['carrier:bond0/eth1', 'ok']]);
      expect(carriers[0]!.detail).to.include('lab link');
    }
    expect(d.capabilities.map((c) => [c.id, c.status])).to.deep.equal([['cap:switch-ports', 'info'], ['cap:machines', 'info']]);
  });

  it("the quick certification passes through it, with carrier loss by command, and leaves the lab as found — the user's own targets, exports, records and modules byte for byte", async () => {
    const reports = join(dir, 'quick');
    const server = vm.node('node-b');
    const client = vm.node('node-a');
    const objectsBefore = { server: await snapshot(server), client: await snapshot(client) };
    expect(objectsBefore.server).to.include('user_disk').and.to.include('user_tpg').and.to.include('/nvmet/ports/1');
    expect(objectsBefore.client).to.match(/iscsid \d+/).and.to.include('user_iface');
    const procModulesBefore = await Promise.all([server, client].map(modules));
    const modulesBefore = await loadedModules();
    // one failover per ULP: the quick tests whose own title is a UL-* ID (after the suite's title)
    const r = await cli(['run', '--quick', '--grep', ' UL-[A-Z]+-01 ', '-t', topo], { timeoutMs: 1_500_000, env: childEnv(reports) });
    const rep = latestReport(reports);
    // (a ULP this lab has no modules for, LNet, is skipped with its reason)
    // The 6.1 workqueue false positive at the iSCSI unbind (known-issues.yaml) is WARN_ONCE and
    // needs a pending runtime-PM request: KNOWN in some runs, a PASS in others; the failover is fine.
    const status = (t: (typeof rep.tests)[number]) => (t.status === 'known-failure' && t.knownFailure?.id === 'workqueue-warns-iscsi-unbind-cancels-pm-work' ? 'passed' : t.status);
    const verdicts = Object.fromEntries(rep.tests.filter((t) => t.status !== 'skipped').map((t) => [t.planId ?? t.title, status(t)]));
    expect(verdicts, `${r.stdout.slice(-3000)}\n${rep.tests.filter((t) => t.status === 'failed').map((t) => t.error?.message).join('\n')}`).to.deep.equal({
      'UL-ISER-01': 'passed',
      'UL-NFS-01': 'passed',
      'UL-NVME-01': 'passed',
      'UL-RDS-01': 'passed',
      'UL-RPING-01': 'known-failure',
      'UL-SRP-01': 'known-failure',
    });
    expect(r.code, 'known failures only (rping, SRP): exit 3').to.equal(3);
    expect(rep.run.topology?.kind).to.equal('real');
    // Faults went through the topology's commands: they took time, and budgets counted from the carrier loss.
    const tl = rep.tests.find((t) => t.planId === 'UL-RDS-01')!.timelines[0]!;
    expect(tl.fault.injectMs).to.be.greaterThan(50);
    expect(tl.summary.effectMs, 'the carrier loss was seen on the node').to.be.a('number');
    expect(tl.phases.find((p) => p.id === 'carrier_lost')?.missing).to.not.equal(true);
    // A real lab is left as found.
    expect(await leftovers()).to.deep.equal([]);
    // Modules: only crypto algorithms may stay, pinned by the kernel's own users of them (crc64_rocksoft
    // binds crc64_rocksoft_generic by a count); anything else the run loaded is gone (iscsi_target_mod
    // stayed, pinned by the iscsi fabric directory the iSER workload made and did not remove).
    const after = await loadedModules();
    const appeared = Object.entries(after).flatMap(([n, ms]) => ms.filter((m) => !modulesBefore[n]!.includes(m) && !/^(crc|crct10dif)/.test(m)).map((m) => `${n}: ${m}`));
    expect(appeared, 'modules the run loaded and left').to.deep.equal([]);
    expect(listJournals('vm-rxe-as-real'), 'no restore journal left open').to.deep.equal([]);
    // The user's objects: byte for byte; none of the harness's own left; no module of theirs gone.
    for (const [n, was] of [[server, objectsBefore.server], [client, objectsBefore.client]] as const) {
      const now = await snapshot(n);
      expect(changed(was, now).join('\n'), `${n.name}: the user's objects, lines before → after`).to.equal('');
      expect(now, `${n.name}: byte for byte`).to.equal(was);
      expect(await ours(n), `${n.name}: the harness's own objects`).to.equal('');
    }
    const procModulesAfter = await Promise.all([server, client].map(modules));
    const mods = [server, client].map((n, i) => ({ node: n.name, ...moduleChanges(procModulesBefore[i]!, procModulesAfter[i]!) }));
    expect(mods.flatMap((m) => m.problems.map((p) => `${m.node}: ${p}`))).to.deep.equal([]);
    process.stdout.write(`      measured: modules left after the run, each still in use: ${mods.map((m) => `${m.node} ${m.left.join(', ') || 'none'}`).join('; ')}\n`);
    process.stdout.write(`      measured: carrier command took ${tl.fault.injectMs} ms, carrier lost at ${tl.summary.effectMs} ms, RDS resumed ${tl.summary.ioResumedMs} ms after it\n`);
  });

  it('what needs a VM power is skipped with the reason; a node that stops answering stops the run and names the restore journals', async () => {
    const reports = join(dir, 'fixture');
    const out = await new Promise<{ code: number | null; stdout: string }>((res, rej) => {
      const child = spawn('npx', ['mocha', 'test/fixtures/specs/real-lab.fixture.ts'], {
        env: { ...process.env, ...childEnv(reports), RDMA_FAILOVER_TOPOLOGY: topo, RF_FIXTURE_VM_LAB: vm.state.lab, NO_COLOR: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stdout += c.toString()));
      const timer = setTimeout(() => (child.kill('SIGKILL'), rej(new Error(`the fixture run did not finish within 600 s:\n${stdout}`))), 600_000);
      child.on('close', (code) => (clearTimeout(timer), res({ code, stdout })));
    });
    const rep = latestReport(reports);
    const t = (title: string) => rep.tests.find((x) => x.title === title)!;
    expect(t('needs machine control').status).to.equal('skipped');
    expect(t('needs machine control').skipReason).to.match(/machine control/);
    expect(t('needs switch port control').status).to.equal('skipped');
    expect(t('needs switch port control').skipReason).to.match(/switch port control/);
    // The node froze during this test: its health check says so.
    expect(t('node-b stops answering during this test').status).to.equal('failed');
    expect(t('node-b stops answering during this test').health.map((h) => [h.node, h.kind])).to.deep.include(['node-b', 'unresponsive']);
    // The next test stops the run, naming the journals; nothing after it runs.
    const next = t('the next test does not run on a lab that lost a node');
    expect(next.status).to.equal('failed');
    expect(next.error?.message).to.match(/node-b/).and.to.match(/The run stops here/).and.to.include('fabric-vm-rxe-as-real.json');
    expect(t('nor the one after it').status).to.equal('skipped');
    expect(t('nor the one after it').skipReason).to.match(/^not run: /);
    expect(rep.run.stopped?.journals.join('\n')).to.include('fabric-vm-rxe-as-real.json');
    expect(out.stdout).to.match(/RUN STOPPED: .*node-b/);
    expect(out.code).to.not.equal(0);
    // node-b's part of the fabric stays journaled (it could not be restored); node-a's was restored.
    expect(listJournals('vm-rxe-as-real')).to.include('fabric-vm-rxe-as-real.json');
    // Once the node answers again, `fabric down` replays what is left.
    await qmp(vm.state.guests.find((x) => x.name === 'node-b')!.qmpSocket, 'cont');
    const down = await cli(['fabric', 'down', topo], { timeoutMs: 180_000 });
    expect(down.code, down.stdout + down.stderr).to.equal(0);
    expect(listJournals('vm-rxe-as-real')).to.deep.equal([]);
    expect(await leftovers()).to.deep.equal([]);
  });
});
