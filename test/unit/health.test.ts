// Node health from the kernel log recorded during a test: what is the kernel's fault (a verdict)
// and what is the VM lab's own wiring (retried on a fresh node, never a PASS by itself).
import { expect } from 'chai';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { consoleFindings, crashSummary, downAfterCrash, freedInUseFinding, kernelLogFindings, kernelMark, kmsgSince, parseProbe, PROBE_PARTS, PROBE_SCRIPT, scanKernelLog, stuckInRdmaOrUlp } from '../../harness/health/health.ts';
import type { KmsgEvent } from '../../harness/monitor/events.ts';
import { classifyKmsg } from '../../harness/monitor/parse.ts';
import { LocalNode } from '../../harness/node/local.ts';
import { LONG_OUTAGE_ALLOW_KERNEL } from '../../suites/lib/storage.ts';

const k = (node: string, ts: number, text: string): KmsgEvent => ({ source: 'kmsg', t: ts * 1000, node, kernelTs: ts, level: 4, text, cls: classifyKmsg(text) });

describe('kernel log findings', () => {
  it('a virtio-net transmit stall (recorded in the VM lab) is the lab\'s wiring: flagged, once per node, and still a kernel-log finding', () => {
    const f = kernelLogFindings([
      k('node-a', 389.993353, 'virtio_net virtio4 eth0: NETDEV WATCHDOG: CPU: 0: transmit queue 0 timed out 44844 ms'),
      k('node-a', 389.99371, 'virtio_net virtio4 eth0: TX timeout on queue: 0, sq: output.0, vq: 0x1, name: output.0, 44844000 usecs ago'),
      k('node-a', 390.249631, 'INFO: task kworker/0:0:7 blocked for more than 20 seconds.'),
    ]);
    expect(f.filter((x) => x.kind === 'nic-stall').map((x) => [x.node, x.labInfrastructure])).to.deep.equal([['node-a', true]]);
    expect(f.find((x) => x.kind === 'kernel-log')?.labInfrastructure).to.not.equal(true);
  });

  it('a refcount underflow is the kernel\'s: not lab infrastructure', () => {
    const f = kernelLogFindings([k('node-a', 38.26, 'refcount_t: underflow; use-after-free.'), k('node-a', 38.27, 'WARNING: CPU: 0 PID: 47 at lib/refcount.c:28 refcount_warn_saturate+0xba/0x110')]);
    expect(f.map((x) => x.kind)).to.deep.equal(['kernel-log']);
    expect(f[0]!.labInfrastructure).to.not.equal(true);
  });

  it('a guest panic (recorded serial console, sysrq "c") is a kernel-log finding with the panic in its evidence', async () => {
    const text = readFileSync('test/fixtures/console/sysrq-panic.txt', 'utf8');
    const f = await consoleFindings('node-a', text);
    expect(f.map((x) => x.kind)).to.deep.equal(['kernel-log']);
    expect(f[0]!.detail).to.equal('serial console: kernel crash: Kernel panic - not syncing: sysrq triggered crash');
    expect(f[0]!.evidence.join('\n')).to.match(/Kernel panic - not syncing: sysrq triggered crash/);
    // the boot of the rebooted guest that follows is not a finding
    expect(await consoleFindings('node-a', text.split('\n').filter((l) => !/sysrq|panic/i.test(l)).join('\n'))).to.deep.equal([]);
  });

  it('a node whose console shows a crash but that still answers (an oops in a worker) is not down; one with no crash is not even asked', async () => {
    const text = readFileSync('test/fixtures/console/sysrq-panic.txt', 'utf8');
    const here = new LocalNode('node-a');
    expect(await downAfterCrash(here, text, 5000), 'answers').to.equal(undefined);
    let asked = 0;
    const counting = Object.assign(Object.create(here) as LocalNode, { exec: (...a: Parameters<LocalNode['exec']>) => (asked++, here.exec(...a)) });
    expect(await downAfterCrash(counting, text.split('\n').filter((l) => !/sysrq|panic/i.test(l)).join('\n'))).to.equal(undefined);
    expect(asked, 'no command for a console without a crash').to.equal(0);
  });

  it('a node that hung, then crashed (recorded: RF-03 long iSER, rxe, 6.1): the crash is the headline, with where and how it got there', async () => {
    const text = readFileSync('test/fixtures/console/console-iser-null-deref.txt', 'utf8');
    const f = await consoleFindings('node-a', text);
    expect(f.map((x) => x.kind)).to.deep.equal(['kernel-log']);
    // the first bad line is a hung task; the oops 13 s later is what took the node away
    expect(f[0]!.detail).to.equal('serial console: kernel crash: BUG: kernel NULL pointer dereference, address: 0000000000000010 at iscsi_verify_itt+0xd/0xe0 [libiscsi] ← iscsi_itt_to_ctask ← iser_task_rsp ← __ib_process_cq ← ib_poll_handler; Kernel panic - not syncing: Fatal exception in interrupt');
    expect(f[0]!.evidence.join('\n')).to.match(/INFO: task kworker\/0:2:47 blocked[\s\S]*end Kernel panic/);
  });

  it('crashSummary: nothing for a log without a crash; a hung task alone is not one', () => {
    expect(crashSummary(['[  349.531141] INFO: task kworker/0:2:47 blocked for more than 20 seconds.', '[  350.0] rf-mark x'])).to.equal(undefined);
    expect(crashSummary([])).to.equal(undefined);
  });
});

describe('node probe: one round trip', () => {
  it('reads every part of the probe script as this machine prints it (read-only commands)', () => {
    const r = spawnSync('sh', ['-c', PROBE_SCRIPT], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status, r.stderr).to.equal(0);
    const parts = parseProbe(r.stdout);
    expect(parts, r.stdout.slice(0, 2000)).to.not.equal(undefined);
    expect([...parts!.keys()].filter((k) => k !== 'qp-failed')).to.deep.equal(['qp', 'kmsg', 'tx', 'taint', 'stuck']);
    expect(parts!.get('taint')).to.match(/^\d+$/);
    expect(parts!.get('tx')!.split('\n')[0], 'the boot id comes first').to.match(/^[0-9a-f-]{36}$/);
  });

  // P1 (ff61d57): RF-04 NFS left a refcount underflow (a WARN, no oops), the next tests ran on that
  // boot, and RF-06 NFS oopsed in xprt_force_disconnect on the freed endpoint.
  it('a refcount underflow or use-after-free in this boot makes the node unfit (as an oops does); other warnings do not', () => {
    const f = freedInUseFinding('node-a', '[   34.924227] refcount_t: underflow; use-after-free.\n');
    expect(f?.kind).to.equal('freed-in-use');
    expect(f?.evidence).to.deep.equal(['[   34.924227] refcount_t: underflow; use-after-free.']);
    expect(freedInUseFinding('node-a', '[ 1.0] BUG: KASAN: slab-use-after-free in cma_cancel_operation+0x1/0x2 [rdma_cm]')?.kind).to.equal('freed-in-use');
    expect(freedInUseFinding('node-a', '')).to.equal(undefined);
    expect(freedInUseFinding('node-a', '[ 2.0] refcount_t: saturated; leaking memory.\n[ 3.0] WARNING: CPU: 0 PID: 1 at lib/foo.c:1')).to.equal(undefined);
  });

  it('a cut-off output (the script stopped before its end) is not taken for a healthy node', () => {
    const text = '#rf qp\n[]\n#rf kmsg\n\n#rf tx\nb\n#rf taint\n0\n#rf stuck\n@@ 12 kworker/0:1\n';
    expect(parseProbe(text), 'no end marker: the caller reads each part on its own').to.equal(undefined);
    const whole = parseProbe(`${text}#rf end\n`)!;
    expect(whole.get('stuck')).to.equal('@@ 12 kworker/0:1');
    expect(whole.get('kmsg')).to.equal('');
  });

  it("one read of the raw kernel log finds both kinds of line, at most three of each, without their level, and nothing else", () => {
    const dir = mkdtempSync(join(tmpdir(), 'rf-klog-'));
    const log = [
      '[ 10.1] rdma_rxe: qp#1 Failed allocating skb',
      '[ 10.2] refcount_t: underflow; use-after-free.',
      '[ 10.3] rdma_rxe: qp#1 Failed allocating skb',
      '[ 10.4] WARNING: CPU: 0 PID: 1 at lib/foo.c:1',
      '[ 10.5] rdma_rxe: qp#1 Failed allocating skb',
      '[ 10.6] rdma_rxe: qp#1 Failed allocating skb',
      '[ 10.7] BUG: KASAN: slab-use-after-free in cma_cancel_operation+0x1/0x2 [rdma_cm]',
      '[ 10.8] rdma_rxe: qp#17 Failed allocating skb',
    ];
    // a dmesg that prints as `dmesg -r` does: "<level>[time] text"
    writeFileSync(join(dir, 'dmesg'), `#!/bin/sh\ncat <<'EOF'\n${log.map((l, i) => `<${i % 7}>${l}`).join('\n')}\nEOF\n`);
    chmodSync(join(dir, 'dmesg'), 0o755);
    const r = spawnSync('sh', ['-c', PROBE_PARTS.kmsg], { encoding: 'utf8', env: { ...process.env, PATH: `${dir}:${process.env.PATH}` } });
    rmSync(dir, { recursive: true });
    const { wedged, freed } = scanKernelLog(r.stdout);
    expect(wedged.split('\n')).to.deep.equal([log[0], log[2], log[4]]);
    expect(freed.split('\n')).to.deep.equal([log[1], log[6]]);
    expect(freedInUseFinding('node-a', freed)?.evidence).to.have.length(2);
    expect(scanKernelLog('')).to.deep.equal({ wedged: '', freed: '' });
  });

  it("the kernel log since a test's mark: only what came after it", async () => {
    const raw = ['<6>[    1.000000] before the test', `<5>[    2.000000] ${kernelMark('t1')}`, '<3>[    3.000000] rdma_rxe: qp#1 Failed allocating skb', '<6>[    4.000000] after'].join('\n');
    expect((await kmsgSince('node-a', raw, 't1')).map((e) => [e.node, e.text])).to.deep.equal([['node-a', 'rdma_rxe: qp#1 Failed allocating skb'], ['node-a', 'after']]);
  });
});

describe("RF-03 long's outage and the VM lab's 20 s hung-task threshold", () => {
  // L0 (Debian 6.1.0-57): iSER gave up at +20.5 s of the 45 s outage; its release work waited for
  // the connection's disconnect until the links came back, and the detector reported it once.
  const l0 = [
    k('node-a', 247.952, ' session2: session recovery timed out after 10 secs'),
    k('node-a', 267.408, 'INFO: task kworker/0:3:254 blocked for more than 20 seconds.'),
    k('node-a', 267.41, '      Not tainted 6.1.0-57-amd64 #1 Debian 6.1.192-3'),
    k('node-a', 267.41, '"echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.'),
    k('node-a', 267.41, 'task:kworker/0:3     state:D stack:0     pid:254   ppid:2      flags:0x00004000'),
    k('node-a', 267.411, 'Workqueue: release workqueue iser_release_work [ib_iser]'),
    k('node-a', 267.413, ' iser_release_work+0x29/0x50 [ib_iser]'),
  ];
  it('the report of a teardown waiting through the outage is allowed there, and only that', () => {
    expect(kernelLogFindings(l0).map((f) => f.detail)).to.deep.equal(['2 kernel log line(s) of class hung: INFO: task kworker/0:3:254 blocked for more than 20 seconds.']);
    expect(kernelLogFindings(l0, LONG_OUTAGE_ALLOW_KERNEL)).to.deep.equal([]);
    // anything else in the same window is still a finding
    const oops = [...l0, k('node-a', 270.1, 'BUG: kernel NULL pointer dereference, address: 0000000000000010')];
    expect(kernelLogFindings(oops, LONG_OUTAGE_ALLOW_KERNEL).map((f) => f.detail)).to.deep.equal(['1 kernel log line(s) of class oops: BUG: kernel NULL pointer dereference, address: 0000000000000010']);
  });
  it('a task still stuck afterwards is the node probe\'s finding, allowance or not', () => {
    expect(stuckInRdmaOrUlp('kworker/0:3', '[<0>] __wait_for_common+0x94/0x1e0\n[<0>] iser_release_work+0x29/0x50 [ib_iser]')).to.equal(true);
  });
});

describe('tasks stuck in D state: in RDMA/ULP code, or unable to exit because I/O under them is', () => {
  // /proc/PID/stack of the fio an NFS test's teardown killed after rxe stopped its QP (VM lab, 6.1):
  // no RDMA frame, but it never exits, keeps the mount, and its hung-task line fell into the next test.
  const exitingFio = ['[<0>] exit_aio+0x109/0x110', '[<0>] __mmput+0x12/0x130', '[<0>] do_exit+0x326/0xb10', '[<0>] do_group_exit+0x2d/0x80', '[<0>] get_signal+0x985/0x990'].join('\n');
  it('a killed task waiting in exit_aio is stuck; one in the block layer alone is not; RDMA frames are', () => {
    expect(stuckInRdmaOrUlp('fio', exitingFio)).to.equal(true);
    expect(stuckInRdmaOrUlp('fio', '[<0>] io_schedule+0x42/0x70\n[<0>] blk_mq_get_tag+0x11e/0x2a0')).to.equal(false);
    expect(stuckInRdmaOrUlp('kworker/0:2', '[<0>] rdma_destroy_id+0x1d/0x30 [rdma_cm]')).to.equal(true);
  });
});
