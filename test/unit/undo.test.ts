// The restore journal's undo entries: kernel state does not outlive a reboot, so an entry from an
// earlier boot of its node is forgotten, not replayed (replaying "unexport"/"umount" into a fresh
// boot fails for ever and keeps every later run "not fully restored"); a change on disk is undone
// whatever the boot. Real commands on this machine (a kind: real lab with a local node).
import { expect } from 'chai';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readJournal, writeJournal, clearJournal } from '../../harness/journal.ts';
import { RealLab } from '../../harness/lab/real.ts';
import { loadTopology } from '../../harness/topology/load.ts';
import { replayUndoJournal, runNewestFirst, UNMOUNT_IF_MOUNTED, UndoStack, type UndoAction } from '../../harness/workload/undo.ts';
import { LocalNode } from '../../harness/node/local.ts';
import { UNEXPORT } from '../../harness/workload/nfs.ts';
import { CommandGate } from '../../harness/node/gate.ts';

const LAB = 'rf-undo-unit';

describe('undo journal: entries are tied to the boot they were made in', () => {
  let dir: string;
  let lab: RealLab;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'rf-undo-'));
    const f = join(dir, 'lab.yaml');
    writeFileSync(f, `name: ${LAB}\nkind: real\nnodes:\n  - name: here\n    access: { type: local }\n`);
    lab = new RealLab(loadTopology(f));
  });
  after(() => {
    clearJournal('undo', LAB);
    rmSync(dir, { recursive: true, force: true });
  });

  /** Journals two changes (touch a file; its undo removes it), as a run killed before teardown would. */
  async function leave(persists: boolean): Promise<string[]> {
    const files = [join(dir, `a-${persists}`), join(dir, `b-${persists}`)];
    const undo = new UndoStack(lab, 'unit');
    for (const f of files) await undo.change({ node: 'here', what: `remove ${f}`, kind: 'argv', argv: ['rm', f], ...(persists ? { persists: true } : {}) }, () => Promise.resolve(writeFileSync(f, 'x')));
    return files;
  }

  const rebootedSince = () => writeJournal('undo', LAB, (readJournal<UndoAction[]>('undo', LAB) ?? []).map((a) => ({ ...a, boot: 'an-earlier-boot' })));

  it('records the boot id of the node with each change', async () => {
    await leave(false);
    const boot = (await lab.node('here').run(['cat', '/proc/sys/kernel/random/boot_id'])).stdout.trim();
    expect((readJournal<UndoAction[]>('undo', LAB) ?? []).map((a) => a.boot)).to.deep.equal([boot, boot]);
    clearJournal('undo', LAB);
  });

  it('same boot: the undo runs (and is forgotten once it succeeded)', async () => {
    const files = await leave(false);
    const done = await replayUndoJournal(lab);
    expect(files.map(existsSync)).to.deep.equal([false, false]);
    expect(done.join('\n')).to.not.match(/FAILED|rebooted/);
    expect(readJournal('undo', LAB)).to.equal(undefined);
  });

  it('an earlier boot: kernel state is gone with it — forgotten, not run, and said so', async () => {
    const files = await leave(false);
    rebootedSince();
    const done = await replayUndoJournal(lab);
    // the undo did not run (here the "state" is a file, so it is still there: proof it was skipped)
    expect(files.map(existsSync)).to.deep.equal([true, true]);
    expect(done).to.have.length(2);
    for (const d of done) expect(d).to.match(/nothing to undo: the node rebooted since/);
    expect(readJournal('undo', LAB)).to.equal(undefined);
  });

  it('an earlier boot, a change on disk (persists): undone all the same', async () => {
    const files = await leave(true);
    rebootedSince();
    const done = await replayUndoJournal(lab);
    expect(files.map(existsSync)).to.deep.equal([false, false]);
    expect(done.join('\n')).to.not.match(/FAILED|rebooted/);
  });

  it('an undo that fails in the same boot stays journaled (the next run retries it)', async () => {
    const f = join(dir, 'never-made');
    const undo = new UndoStack(lab, 'unit');
    await undo.change({ node: 'here', what: `remove ${f}`, kind: 'argv', argv: ['rm', f] }, () => Promise.resolve());
    const done = await replayUndoJournal(lab);
    expect(done.join('\n')).to.match(/^FAILED here: remove .*never-made/);
    expect(readJournal<UndoAction[]>('undo', LAB)).to.have.length(1);
    clearJournal('undo', LAB);
  });

  // M1 (c1c1157): a set-up failing because its test stopped undid itself behind the closed gate; a
  // best-effort unload took the refusals for answers and its entry left the journal, undone never.
  it("a stopped test's own undos (behind its closed gate) are not tried and stay journaled; the restore makes them", async () => {
    const f = join(dir, 'made-by-a-stopped-test');
    const undo = new UndoStack(lab, 'unit');
    await undo.change({ node: 'here', what: 'unload rf_no_such_module', kind: 'modules', modules: ['rf_no_such_module'] }, () => Promise.resolve());
    await undo.change({ node: 'here', what: `remove ${f}`, kind: 'argv', argv: ['rm', f] }, () => Promise.resolve(writeFileSync(f, 'x')));
    const gate = new CommandGate();
    gate.close('the test stopped');
    const failed = await gate.run(() => undo.run());
    expect(failed).to.have.length(2);
    for (const m of failed) expect(m).to.match(/left journaled for the restore: the test that made it has stopped \(the test stopped\)/);
    expect(existsSync(f)).to.equal(true);
    expect(readJournal<UndoAction[]>('undo', LAB)).to.have.length(2);
    const done = await replayUndoJournal(lab);
    expect(done.join('\n')).to.not.match(/FAILED/);
    expect(existsSync(f)).to.equal(false);
    expect(readJournal('undo', LAB)).to.equal(undefined);
  });
});

describe('undo order: module unloads go on in the background, each node keeps its order', () => {
  const a = (node: string, kind: 'argv' | 'modules', what: string): UndoAction =>
    kind === 'modules' ? { id: what, owner: 'u', node, what, kind, modules: [what] } : { id: what, owner: 'u', node, what, kind, argv: ['true'] };
  /** Runs the stack with every undo taking `ms` (unloads 50 ms, commands 10 ms); returns start/end events in order. */
  async function trace(stack: UndoAction[]): Promise<string[]> {
    const log: string[] = [];
    await runNewestFirst(stack, async (x) => {
      log.push(`start ${x.what}`);
      await new Promise((r) => setTimeout(r, x.kind === 'modules' ? 50 : 10));
      log.push(`end ${x.what}`);
    });
    return log;
  }

  it("an unload on one node runs while the other node's undos go on (the iSER teardown)", async () => {
    // pushed in set-up order: target node b, then initiator node a
    const log = await trace([a('b', 'modules', 'b-mods'), a('b', 'argv', 'b-target'), a('a', 'modules', 'a-mods'), a('a', 'argv', 'a-logout')]);
    expect(log).to.deep.equal(['start a-logout', 'end a-logout', 'start a-mods', 'start b-target', 'end b-target', 'start b-mods', 'end a-mods', 'end b-mods']);
  });

  it('the next undo on the same node waits for its unload (each node newest first)', async () => {
    const log = await trace([a('a', 'argv', 'a-older'), a('a', 'modules', 'a-mods'), a('b', 'argv', 'b-cmd')]);
    expect(log).to.deep.equal(['start b-cmd', 'end b-cmd', 'start a-mods', 'end a-mods', 'start a-older', 'end a-older']);
  });

  it('commands never overlap, whatever their node', async () => {
    const log = await trace([a('a', 'argv', 'x'), a('b', 'argv', 'y'), a('a', 'argv', 'z')]);
    expect(log).to.deep.equal(['start z', 'end z', 'start y', 'end y', 'start x', 'end x']);
  });

  it('run() returns only when every unload has ended', async () => {
    const log = await trace([a('a', 'modules', 'm')]);
    expect(log.at(-1)).to.equal('end m');
  });
});

// A change is journaled before it is made: its undo may find nothing to undo, and must then succeed
// (a failing undo stays journaled and fails again before every later test). The real script, with a
// stand-in umount on PATH that only says what it was asked (nothing is unmounted on this machine).
describe('undo scripts are idempotent: an unmount of what is not mounted is done', () => {
  let dir: string;
  const path = process.env.PATH;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'rf-umount-test-'));
    writeFileSync(join(dir, 'umount'), `#!/bin/sh\necho "$1" >> ${JSON.stringify(join(dir, 'asked'))}\n`);
    chmodSync(join(dir, 'umount'), 0o755);
    process.env.PATH = `${dir}:${path ?? ''}`;
  });
  after(() => {
    process.env.PATH = path;
    rmSync(dir, { recursive: true, force: true });
  });
  const asked = () => (existsSync(join(dir, 'asked')) ? readFileSync(join(dir, 'asked'), 'utf8').trim().split('\n') : []);

  it('not mounted: succeeds without calling umount', async () => {
    const r = await new LocalNode().exec(['sh', '-c', UNMOUNT_IF_MOUNTED, 'unmount', join(dir, 'never-mounted')]);
    expect(r.exitCode).to.equal(0);
    expect(asked()).to.deep.equal([]);
  });
  it('mounted (/proc, as /proc/mounts lists it): umount is called with that mount point', async () => {
    const r = await new LocalNode().exec(['sh', '-c', UNMOUNT_IF_MOUNTED, 'unmount', '/proc']);
    expect(r.exitCode).to.equal(0);
    expect(asked()).to.deep.equal(['/proc']);
  });

  // a stand-in exportfs: -u fails (nothing to unexport), the listing shows what $RF_EXPORTS holds
  const unexport = async (listed: string) => {
    writeFileSync(join(dir, 'exportfs'), `#!/bin/sh\n[ "$1" = -u ] && exit 1\nprintf '%s' "$RF_EXPORTS"\n`);
    chmodSync(join(dir, 'exportfs'), 0o755);
    return (await new LocalNode().exec(['sh', '-c', UNEXPORT, 'unexport', '192.168.50.1:/srv/rf-nfs', '/srv/rf-nfs'], { env: { RF_EXPORTS: listed } })).exitCode;
  };
  it('an unexport of a path no longer exported is done; one still exported (unexport failed) is not', async () => {
    expect(await unexport(''), 'nothing exported').to.equal(0);
    expect(await unexport('/srv/rf-nfs-other\t10.0.0.1\n'), 'another path with our path as prefix').to.equal(0);
    expect(await unexport('/srv/rf-nfs\t192.168.50.1\n'), 'still exported').to.not.equal(0);
  });
});
