// The monitors' remote scripts, run for real by bash on this machine against a sysfs and a tracefs
// instance made of files (the VM lab runs them against the kernel's: test/lab/monitors.test.ts).
// What is checked here is their logic: the gate between windows, what a window's opening enables.
import { expect } from 'chai';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Subscription } from 'rxjs';
import { sleep, waitFor } from '../../harness/clock.ts';
import { MONITOR_SCRIPTS } from '../../harness/monitor/hub.ts';
import { LocalNode } from '../../harness/node/local.ts';

describe('monitor scripts (bash, on files)', function () {
  this.timeout(30_000);
  const node = new LocalNode();
  let dir: string;
  let net: string;
  let inst: string;
  let gate: string;
  const subs: Subscription[] = [];
  const put = (path: string, text: string) => {
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, `${text}\n`);
  };
  const read = (path: string) => readFileSync(path, 'utf8').trim();

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'rf-monscripts-'));
    net = join(dir, 'net');
    inst = join(dir, 'instance');
    gate = join(inst, 'tracing_on');
    put(join(net, 'bond0/bonding/active_slave'), 'eth0');
    put(join(net, 'bond0/bonding/mii_status'), 'up');
    put(join(net, 'bond0/address'), '52:54:00:00:00:01');
    put(join(net, 'eth0/carrier'), '1');
    put(join(net, 'eth1/carrier'), '1');
    put(gate, '1');
  });
  afterEach(async () => {
    for (const s of subs.splice(0)) s.unsubscribe();
    await node.settle();
    rmSync(dir, { recursive: true, force: true });
  });
  after(() => node.close());

  const follow = (argv: string[], env?: Record<string, string>): string[] => {
    const lines: string[] = [];
    subs.push(node.stream(argv, { timeoutMs: 60_000, ...(env ? { env } : {}) }).subscribe({ next: (l) => lines.push(`${l.stream === 'stderr' ? 'ERR ' : ''}${l.text}`) }));
    return lines;
  };

  it('bond poller: each change once, while the gate is open and while it is closed (then at 0.5 s); the slave counters each tick while it is open', async () => {
    for (const [n, tx] of [['eth0', '1000'], ['eth1', '20']]) {
      put(join(net, `${n}/statistics/tx_bytes`), tx!);
      put(join(net, `${n}/statistics/rx_bytes`), '7');
    }
    const lines = follow(['bash', '-c', MONITOR_SCRIPTS.BOND_POLL, 'bondpoll', net, 'bond0', '0.05', gate, 'eth0', 'eth1']);
    await waitFor('first sample', () => (lines.length ? true : undefined), { timeoutMs: 5000 });
    expect(lines[0]).to.match(/^\d+\.\d+ eth0\|up\|52:54:00:00:00:01\| eth0=1 eth1=1$/);
    put(join(net, 'eth0/carrier'), '0');
    put(join(net, 'bond0/bonding/active_slave'), 'eth1');
    await waitFor('the failover', () => (lines.some((l) => / eth1\|up\|.* eth0=0 eth1=1$/.test(l)) ? true : undefined), { timeoutMs: 5000 });
    put(join(net, 'eth1/statistics/tx_bytes'), '5000');
    await waitFor('the counters as they are now', () => (lines.some((l) => / eth0=1000,7 eth1=5000,7$/.test(l)) ? true : undefined), { timeoutMs: 5000 });
    expect(lines.find((l) => l.startsWith('ctr '))).to.match(/^ctr \d+\.\d+ eth0=1000,7 eth1=20,7$/);
    put(gate, '0');
    await sleep(300);
    const n = lines.length;
    const ctrClosed = lines.filter((l) => l.startsWith('ctr ')).length;
    put(join(net, 'bond0/bonding/active_slave'), 'eth0');
    put(join(net, 'eth0/carrier'), '1');
    await waitFor('a change while closed', () => (lines.some((l) => / eth0\|up\|.* eth0=1 eth1=1$/.test(l.slice(0))) && lines.length > n ? true : undefined), { timeoutMs: 5000 });
    await sleep(700);
    expect(lines.filter((l) => l.startsWith('ERR ')), 'no errors').to.deep.equal([]);
    expect(lines.filter((l) => l.startsWith('ctr ')).length, 'no counters while the gate is closed').to.equal(ctrClosed);
    // nothing printed twice: a sample is printed only when it differs from the previous one
    const states = lines.filter((l) => !l.startsWith('ctr ')).map((l) => l.replace(/^\S+ /, ''));
    expect(states.filter((s, i) => i > 0 && s === states[i - 1])).to.deep.equal([]);
  });

  it('res poller: snapshots while the gate is open, no rdma at all while it is closed', async () => {
    const bin = join(dir, 'bin');
    const count = join(dir, 'rdma-calls');
    put(count, '');
    put(join(bin, 'rdma'), `#!/bin/sh\necho x >> ${count}\necho '[]'`);
    chmodSync(join(bin, 'rdma'), 0o755);
    const calls = () => read(count).split('\n').filter(Boolean).length;
    const lines = follow(['bash', '-c', MONITOR_SCRIPTS.RES_POLL, 'respoll', '0.1', gate], { PATH: `${bin}:${process.env.PATH ?? ''}` });
    await waitFor('snapshots', () => (lines.filter((l) => l.startsWith('@@ ')).length >= 2 ? true : undefined), { timeoutMs: 5000 });
    put(gate, '0');
    await sleep(800); // the snapshot under way ends
    const closed = calls();
    await sleep(1200);
    expect(calls(), 'rdma runs while the gate is closed').to.equal(closed);
    put(gate, '1');
    await waitFor('snapshots again', () => (calls() > closed ? true : undefined), { timeoutMs: 5000 });
  });

  it("a window's opening: systems loaded since are enabled (rpcrdma: its connection events only), others left alone, the gate opened, each bond's state read", async () => {
    put(join(inst, 'events/rdma_cma/enable'), '0'); // reloaded since: off
    put(join(inst, 'events/ib_cma/enable'), 'X'); // some events on: somebody chose them, left alone
    put(join(inst, 'events/rpcrdma/enable'), '0');
    put(join(inst, 'events/rpcrdma/xprtrdma_op_connect/enable'), '0');
    put(join(inst, 'events/rpcrdma/svcrdma_qp_err/enable'), '0');
    put(join(inst, 'events/rpcrdma/xprtrdma_post_send/enable'), '0');
    put(join(inst, 'events/rpcrdma/xprtrdma_marshal_failed/enable'), '0');
    put(join(inst, 'events/rpcrdma/xprtrdma_frwr_maperr/enable'), '0');
    put(join(inst, 'events/sunrpc/enable'), '0');
    put(join(inst, 'events/sunrpc/rpc_call_rpcerror/enable'), '0');
    put(join(inst, 'events/sunrpc/rpc_task_begin/enable'), '0');
    put(gate, '0');
    const r = await node.exec(['bash', '-c', MONITOR_SCRIPTS.OPEN, 'mon-open', inst, net, 'bond0:eth0,eth1', '', 'rdma_cma', 'ib_cma', 'rpcrdma', 'sunrpc', 'nosuchsystem']);
    expect(r.exitCode, r.stderr).to.equal(0);
    const out = r.stdout.trim().split('\n');
    expect(out.filter((l) => l.startsWith('traced '))).to.deep.equal(['traced rdma_cma', 'traced ib_cma', 'traced rpcrdma', 'traced sunrpc']);
    expect(out.filter((l) => l.startsWith('bond '))).to.have.length(1);
    expect(out.find((l) => l.startsWith('bond '))).to.match(/^bond bond0 \d+\.\d+ eth0\|up\|52:54:00:00:00:01\| eth0=1 eth1=1$/);
    expect(read(join(inst, 'events/rdma_cma/enable'))).to.equal('1');
    expect(read(join(inst, 'events/ib_cma/enable'))).to.equal('X');
    expect(read(join(inst, 'events/rpcrdma/xprtrdma_op_connect/enable'))).to.equal('1');
    expect(read(join(inst, 'events/rpcrdma/svcrdma_qp_err/enable'))).to.equal('1');
    expect(read(join(inst, 'events/rpcrdma/xprtrdma_post_send/enable')), 'the data path stays off').to.equal('0');
    // the transport's failures behind an RPC that ends with an error, and that end itself
    expect(read(join(inst, 'events/rpcrdma/xprtrdma_marshal_failed/enable'))).to.equal('1');
    expect(read(join(inst, 'events/rpcrdma/xprtrdma_frwr_maperr/enable'))).to.equal('1');
    expect(read(join(inst, 'events/sunrpc/rpc_call_rpcerror/enable'))).to.equal('1');
    expect(read(join(inst, 'events/sunrpc/rpc_task_begin/enable')), 'every RPC stays off').to.equal('0');
    expect(read(gate)).to.equal('1');
  });

  // cma.c drops a queued event for an id being destroyed without a trace: only the runs of its
  // workqueue handler show it. 6.1's event filters take no function names, so the handler is found
  // by address: rdma_cm's text base (read each window: a reload moves it) plus the handler's offset
  // (from kallsyms once — slow under TCG — then given back by the hub).
  it("rdma_cm's workqueue handler: traced by its address, the offset found once, followed when rdma_cm moves, off without it", async () => {
    const w = join(inst, 'events/workqueue');
    for (const e of ['workqueue_execute_start', 'workqueue_execute_end']) {
      put(join(w, e, 'enable'), '0');
      put(join(w, e, 'filter'), 'none');
    }
    const text = join(dir, 'rdma_cm.text');
    const kallsyms = join(dir, 'kallsyms');
    put(text, '0xffffffffc0487000');
    put(kallsyms, 'ffffffffc0480010 t cma_work_handler_other\t[x]\nffffffffc048ca60 t cma_work_handler\t[rdma_cm]\nffffffffc048cb00 t cma_ndev_work_handler\t[rdma_cm]');
    const work = (cw: string) => node.exec(['bash', '-c', `i=$1; cw=$2\n${MONITOR_SCRIPTS.CMA_WORK}`, 'cmawork', inst, cw], { env: { RF_CMA_TEXT: text, RF_KALLSYMS: kallsyms } });
    let r = await work('');
    expect(r.exitCode, r.stderr).to.equal(0);
    expect(r.stdout.trim(), 'the offset, given back').to.equal('cmawork 5a60');
    for (const e of ['workqueue_execute_start', 'workqueue_execute_end']) {
      expect(read(join(w, e, 'filter'))).to.equal('function == 0xffffffffc048ca60');
      expect(read(join(w, e, 'enable'))).to.equal('1');
    }
    // rdma_cm loaded again elsewhere: the known offset moves the filter, kallsyms is not read
    put(text, '0xffffffffc0600000');
    rmSync(kallsyms);
    r = await work('5a60');
    expect(r.stdout.trim()).to.equal('');
    expect(read(join(w, 'workqueue_execute_start/filter'))).to.equal('function == 0xffffffffc0605a60');
    // rdma_cm gone: unfiltered these would be every work of the node, so they go off
    rmSync(text);
    r = await work('5a60');
    expect(r.exitCode).to.equal(0);
    expect(read(join(w, 'workqueue_execute_start/enable'))).to.equal('0');
    expect(read(join(w, 'workqueue_execute_end/enable'))).to.equal('0');
    // addresses hidden (kptr_restrict: zeros): no filter can be made, the events stay off
    put(text, '0xffffffffc0487000');
    put(kallsyms, '0000000000000000 t cma_work_handler\t[rdma_cm]');
    r = await work('');
    expect(r.stdout.trim()).to.equal('');
    expect(read(join(w, 'workqueue_execute_start/enable'))).to.equal('0');
  });

  it("a window's opening fails when the instance is gone (the hub then starts the node's monitors afresh)", async () => {
    const r = await node.exec(['bash', '-c', MONITOR_SCRIPTS.OPEN, 'mon-open', join(dir, 'gone'), net, 'bond0:eth0,eth1', '', 'rdma_cma']);
    expect(r.exitCode).to.equal(3);
    expect(r.stderr).to.include('is gone');
  });

  it('removing an instance: gone is done (twice too); one a process holds is not, and the holder is named', async () => {
    const rm = (path: string) => node.exec(['sh', '-c', MONITOR_SCRIPTS.REMOVE_INSTANCE, 'rm-inst', path]);
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    expect((await rm(empty)).exitCode).to.equal(0);
    expect((await rm(empty)).exitCode, 'already gone').to.equal(0);
    // a reader holding a file in it (tracefs says EBUSY; a plain directory, not empty)
    const lines = follow(['sh', '-c', 'exec 3<"$1"; echo open; exec sleep 30', 'holder', gate]);
    await waitFor('the holder', () => (lines.includes('open') ? true : undefined), { timeoutMs: 5000 });
    const r = await rm(inst);
    expect(r.exitCode).to.equal(1);
    expect(r.stdout).to.match(/held by pid \d+ \(sleep\)/);
  });
});
