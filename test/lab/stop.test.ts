// Stopping a run must leave the lab as found. For real, in the VM lab: a run is stopped while an RDS
// failover test has a slave's carrier cut — once with Ctrl-C (SIGINT to its process group, as a
// terminal sends it), once with kill -9 followed by the next run.
import { expect } from 'chai';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sleep } from '../../harness/clock.ts';
import { releaseSharedLab } from '../../harness/fixture/lab-session.ts';
import { journalDir, listJournals } from '../../harness/journal.ts';
import type { RunReport } from '../../harness/report/schema.ts';
import { loadTopology } from '../../harness/topology/load.ts';
import { labUp, type VmLab } from '../../harness/vmlab/vm-lab.ts';
import { BIN, cli } from '../support/cli.ts';

const TOPO = 'topologies/vm-rxe.yaml';
const LAB = 'vm-rxe';

function childEnv(reports: string): Record<string, string> {
  return { RDMA_FAILOVER_EXCLUDE_TAGS: '', RDMA_FAILOVER_TAGS: '', RDMA_FAILOVER_REPORTS: reports, RDMA_FAILOVER_PDF: '0', NO_COLOR: '1' };
}

/** What a stopped run must not leave: a cut carrier, a trace instance, a process of ours, a bond. */
const LEFTOVERS = `for d in /sys/class/net/eth*; do
  n=\${d##*/}; up=1
  # an admin-down NIC has no readable carrier: up for a moment, then as it was
  [ $(( $(cat "$d/flags") & 1 )) = 1 ] || { up=0; ip link set "$n" up; sleep 0.5; }
  [ "$(cat "$d/carrier" 2>/dev/null)" = 1 ] || echo "no carrier: $n"
  [ $up = 1 ] || ip link set "$n" down
done
ip -j link show bond0 >/dev/null 2>&1 && echo "bond0 still exists"
for i in /sys/kernel/tracing/instances/rf-*; do [ -e "$i" ] && echo "trace instance $i"; done
ps -eo args= | grep -E 'tcpdump -l -n -tt|ip -o -ts monitor|dmesg -W -r|bondpoll|respoll|trace_pipe|--run-id' | grep -v grep | sed 's/^/process: /'
true`;

/** Process groups the runner started (the suites run in one of their own). */
function childrenOf(pid: number): number[] {
  const r = spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' });
  return r.stdout.split('\n').filter(Boolean).map(Number);
}

/** The runner's suites process, once started: not any child (tsx's esbuild service is one while
 *  the runner still loads, and a Ctrl-C then ends the runner before it has started anything). */
function suitesOf(pid: number): number[] {
  const r = spawnSync('pgrep', ['-P', String(pid), '-f', 'mocha-main'], { encoding: 'utf8' });
  return r.stdout.split('\n').filter(Boolean).map(Number);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Starts `rdma-failover run …` in a process group of its own, as a shell job would be. */
function startRun(args: string[], env: Record<string, string>): { child: ChildProcess; output: () => string; exited: Promise<{ code: number | null; signal: string | null }> } {
  const child = spawn(BIN, ['run', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<{ code: number | null; signal: string | null }>((res) => child.on('close', (code, signal) => res({ code, signal })));
  return { child, output: () => out, exited };
}

/** Resolves once a carrier cut is journaled: the fault is in place. */
async function faultInjected(timeoutMs: number, output: () => string): Promise<void> {
  const f = join(journalDir(), `faults-${LAB}.json`);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (existsSync(f) && readFileSync(f, 'utf8').includes('carrier-restore')) return;
    await sleep(200);
  }
  throw new Error(`no fault was injected within ${timeoutMs} ms:\n${output().slice(-3000)}`);
}

function latestReport(dir: string): RunReport {
  const run = readdirSync(dir).filter((d) => d !== 'latest' && existsSync(join(dir, d, 'report.json'))).sort().pop();
  if (!run) throw new Error(`no report in ${dir}`);
  return JSON.parse(readFileSync(join(dir, run, 'report.json'), 'utf8')) as RunReport;
}

describe('stopping a run leaves the lab as found', function () {
  this.timeout(900_000);
  let vm: VmLab;
  let dir: string;
  const leftovers = async (): Promise<string[]> =>
    (await Promise.all([...vm.nodes.values()].map(async (n) => (await n.run(['sh', '-c', LEFTOVERS], { timeoutMs: 30_000 })).stdout.split('\n').filter(Boolean).map((l) => `${n.name}: ${l}`)))).flat();

  before(async function () {
    this.timeout(600_000);
    await releaseSharedLab({ keepLab: true });
    vm = await labUp(loadTopology(TOPO));
    dir = mkdtempSync(join(tmpdir(), 'rf-stop-'));
    expect(await leftovers(), 'the lab is clean before').to.deep.equal([]);
  });
  after(async () => {
    await vm?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('Ctrl-C while both links are cut: an orderly stop within the bound — carriers back, monitors and trace instances gone, report marked interrupted', async () => {
    const reports = join(dir, 'sigint');
    const run = startRun(['rds.failover', '--grep', "RF-03 both links down"], childEnv(reports));
    await faultInjected(300_000, run.output);
    await sleep(1000); // inside the 3 s outage
    const t0 = Date.now();
    process.kill(-run.child.pid!, 'SIGINT'); // what a terminal's Ctrl-C does: the whole foreground group
    const { code } = await run.exited;
    const stopMs = Date.now() - t0;
    expect(code, run.output().slice(-3000)).to.equal(130);
    expect(stopMs, 'the stop is bounded').to.be.lessThan(120_000);
    const out = run.output();
    expect(out, out.slice(-3000)).to.match(/SIGINT: stopping/).and.to.match(/stopped after [\d.]+ s: the lab is restored/);
    expect(out, 'one Ctrl-C is one stop, not a forced exit').to.not.match(/again: exiting/);
    expect(await leftovers()).to.deep.equal([]);
    expect(listJournals(LAB), 'every journal entry was undone').to.deep.equal([]);
    const rep = latestReport(reports);
    expect(rep.run.interrupted?.why).to.match(/SIGINT/);
    expect(rep.tests.map((t) => t.status)).to.deep.equal(['interrupted']);
    process.stdout.write(`      measured: SIGINT → exit 130 in ${(stopMs / 1000).toFixed(1)} s, lab restored\n`);
  });

  it('Ctrl-C while the suites are still starting: the run is interrupted (130), never a success', async () => {
    const run = startRun(['rds.failover', '--grep', 'RF-03 both links down'], childEnv(join(dir, 'early')));
    // the moment the runner has started the suites: neither mocha nor the suites can stop in order yet
    const t0 = Date.now();
    while (!suitesOf(run.child.pid!).length && Date.now() - t0 < 60_000) await sleep(20);
    process.kill(-run.child.pid!, 'SIGINT');
    const { code } = await run.exited;
    expect(code, run.output().slice(-3000)).to.equal(130);
    expect(run.output()).to.match(/SIGINT: (stopping|the suites ended)/);
    expect(await leftovers()).to.deep.equal([]);
    expect(listJournals(LAB)).to.deep.equal([]);
  });

  it('kill -9 of the runner alone: the suites notice and stop in order by themselves — lab restored, report marked interrupted', async () => {
    const reports = join(dir, 'runner-killed');
    const run = startRun(['rds.failover', '--grep', 'RF-03 both links down'], childEnv(reports));
    await faultInjected(300_000, run.output);
    await sleep(1000); // inside the 3 s outage
    const suites = suitesOf(run.child.pid!);
    expect(suites, 'the suites run in a process of their own').to.have.length(1);
    process.kill(-run.child.pid!, 'SIGKILL');
    await run.exited;
    const t0 = Date.now();
    while (alive(suites[0]!) && Date.now() - t0 < 150_000) await sleep(500);
    expect(alive(suites[0]!), 'the suites stopped within the bound').to.equal(false);
    expect(await leftovers()).to.deep.equal([]);
    expect(listJournals(LAB)).to.deep.equal([]);
    const rep = latestReport(reports);
    expect(rep.run.interrupted?.why).to.match(/runner process exited/);
    process.stdout.write(`      measured: runner killed → suites stopped and restored the lab in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  });

  it('kill -9 of every process of the run while both links are cut: the next run stops what it left, heals the fault, removes its trace instance', async () => {
    const run = startRun(['rds.failover', '--grep', 'RF-03 both links down'], childEnv(join(dir, 'killed')));
    await faultInjected(300_000, run.output);
    await sleep(1000); // inside the 3 s outage
    for (const g of [run.child.pid!, ...childrenOf(run.child.pid!)]) process.kill(-g, 'SIGKILL');
    await run.exited;
    // The killed run's state is really there: otherwise this test would prove nothing.
    const left = await leftovers();
    expect(left.some((l) => /no carrier/.test(l)), left.join('\n')).to.equal(true);
    expect(left.some((l) => /trace instance/.test(l)), left.join('\n')).to.equal(true);
    expect(left.some((l) => /process: /.test(l)), left.join('\n')).to.equal(true);
    expect(listJournals(LAB)).to.include.members(['faults-vm-rxe.json', 'procs-vm-rxe.json', 'trace-vm-rxe.json', 'fabric-vm-rxe.json']);
    // The next run (a short one) starts by undoing all of it, and ends leaving nothing.
    const next = await cli(['run', 'rping.failover'], { timeoutMs: 600_000, env: childEnv(join(dir, 'next')) });
    // rping's only test is a known failure (rping ignores ADDR_CHANGE): "known failures only" is 3
    expect(next.code, next.stdout.slice(-3000)).to.equal(3);
    expect(next.stdout).to.match(/\n0 passed, 0 failed, 0 skipped\n/);
    expect(await leftovers()).to.deep.equal([]);
    expect(listJournals(LAB)).to.deep.equal([]);
  });
});
