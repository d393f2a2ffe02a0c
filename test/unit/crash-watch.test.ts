// CrashWatch: while a test's body runs, a node whose console shows a kernel crash is probed, and
// marked down when it does not answer. Only what was printed since the test's mark counts; a node
// that oopsed but answers is not probed again for the same crash; stop() leaves nothing running.
// (The real thing, a guest panicking under a running command, is test/matrix/crash-proof.test.ts.)
import { expect } from 'chai';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CrashWatch } from '../../harness/health/crash-watch.ts';
import type { MachineControl } from '../../harness/lab/lab.ts';
import type { Node } from '../../harness/node/node.ts';
import { consoleSince } from '../../harness/vmlab/vm-lab.ts';
import { sleep } from '../../harness/clock.ts';

const PANIC = readFileSync('test/fixtures/console/sysrq-panic.txt', 'utf8');
const BOOT = '[    1.000000] Linux version 6.1.0-57-amd64\n[    2.000000] rdma_rxe: loaded\n';

describe('CrashWatch (a node that crashes during the body is marked down at once)', () => {
  let dir: string;
  let file: string;
  let machines: MachineControl;
  let marked: string[];
  let node: Node;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'rf-crashwatch-'));
    file = join(dir, 'console.log');
    writeFileSync(file, BOOT);
    // the VM lab's own console reading, over a file this test writes
    machines = { consoleMark: () => statSync(file).size, consoleSince: (_n: string, mark: number) => consoleSince(file, mark, 400_000) } as unknown as MachineControl;
    marked = [];
    // only the name and markDown are used: the probe is the test's
    node = { name: 'node-a', markDown: (why: string) => marked.push(why) } as unknown as Node;
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('a crash printed before the test\'s mark is not the test\'s: no probe', async () => {
    appendFileSync(file, PANIC);
    let probes = 0;
    const w = new CrashWatch([node], machines, new Map([['node-a', statSync(file).size]]), { everyMs: 60_000, probe: () => Promise.resolve((probes++, 'down')) });
    appendFileSync(file, BOOT);
    await w.check();
    await w.stop();
    expect(probes).to.equal(0);
    expect(marked).to.deep.equal([]);
  });

  it('a crash after the mark, and no answer: marked down with the probe\'s reason, once', async () => {
    let probes = 0;
    const w = new CrashWatch([node], machines, new Map([['node-a', statSync(file).size]]), { everyMs: 60_000, probe: (_n, text) => Promise.resolve((probes++, /Kernel panic/.test(text()) ? 'node-a is down: panic' : undefined)) });
    await w.check();
    expect(probes, 'nothing printed since the mark').to.equal(0);
    appendFileSync(file, PANIC);
    await w.check();
    appendFileSync(file, '[   99.000000] more\n');
    await w.check();
    await w.stop();
    expect(marked).to.deep.equal(['node-a is down: panic']);
    expect(w.down.get('node-a')).to.equal('node-a is down: panic');
    expect(probes, 'a node marked down is not probed again').to.equal(1);
  });

  it('a node that crashed but answers is not marked down, nor probed again for that crash; a later crash is probed', async () => {
    let answers = true;
    let probes = 0;
    const w = new CrashWatch([node], machines, new Map([['node-a', statSync(file).size]]), { everyMs: 60_000, probe: () => Promise.resolve((probes++, answers ? undefined : 'node-a is down')) });
    appendFileSync(file, '[   10.000000] BUG: kernel NULL pointer dereference, address: 0000000000000010\n');
    await w.check();
    expect(probes).to.equal(1);
    expect(marked).to.deep.equal([]);
    appendFileSync(file, '[   11.000000] rdma_rxe: nothing bad\n');
    await w.check();
    expect(probes, 'the same crash, seen again, is not probed again').to.equal(1);
    answers = false;
    appendFileSync(file, PANIC);
    await w.check();
    await w.stop();
    expect(probes).to.equal(2);
    expect(marked).to.deep.equal(['node-a is down']);
  });

  it('finish(): after the body, a node that answered through its oops is asked again (it may have died since, printing nothing more); a node already down is not', async () => {
    const other = { name: 'node-b', markDown: (why: string) => marked.push(why) } as unknown as Node;
    let answers = true;
    const probed: string[] = [];
    const marks = new Map([['node-a', statSync(file).size], ['node-b', statSync(file).size]]);
    // both nodes read the same console file here: node-b's probe says it is down at once
    const w = new CrashWatch([node, other], machines, marks, { everyMs: 60_000, probe: (n) => Promise.resolve((probed.push(n.name), n.name === 'node-b' || !answers ? `${n.name} is down` : undefined)) });
    appendFileSync(file, '[   10.000000] BUG: kernel NULL pointer dereference, address: 0000000000000010\n');
    await w.check();
    expect(probed.sort()).to.deep.equal(['node-a', 'node-b']);
    expect(marked).to.deep.equal(['node-b is down']);
    answers = false; // node-a hangs after its oops, with nothing more on its console
    await w.finish();
    expect(probed.sort(), 'node-a asked again, node-b (down) not').to.deep.equal(['node-a', 'node-a', 'node-b']);
    expect(marked).to.deep.equal(['node-b is down', 'node-a is down']);
    expect([...w.down.keys()].sort()).to.deep.equal(['node-a', 'node-b']);
  });

  it('finish() with no crash since the mark asks nothing', async () => {
    let probes = 0;
    const w = new CrashWatch([node], machines, new Map([['node-a', statSync(file).size]]), { everyMs: 60_000, probe: () => Promise.resolve((probes++, 'down')) });
    appendFileSync(file, BOOT);
    await w.finish();
    expect(probes).to.equal(0);
    expect(marked).to.deep.equal([]);
  });

  it('runs on its own timer, and stop() waits for a probe under way; nothing runs after it', async () => {
    let probes = 0;
    let finished = 0;
    const w = new CrashWatch([node], machines, new Map([['node-a', statSync(file).size]]), {
      everyMs: 10,
      probe: async () => {
        probes++;
        await sleep(200);
        finished++;
        return 'node-a is down';
      },
    });
    appendFileSync(file, PANIC);
    const t0 = Date.now();
    while (!probes && Date.now() - t0 < 2000) await sleep(5);
    expect(probes, 'found by the timer, without check()').to.equal(1);
    await w.stop();
    expect(finished, 'stop() returned after the probe under way').to.equal(1);
    expect(marked).to.deep.equal(['node-a is down']);
    appendFileSync(file, PANIC);
    await sleep(50);
    expect(probes, 'nothing after stop()').to.equal(1);
  });
});
