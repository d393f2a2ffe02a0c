// The restore journal's undo entries: kernel state does not outlive a reboot, so an entry from an
// earlier boot of its node is forgotten, not replayed (replaying "unexport"/"umount" into a fresh
// boot fails for ever and keeps every later run "not fully restored"); a change on disk is undone
// whatever the boot. Real commands on this machine (a kind: real lab with a local node).
import { expect } from 'chai';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readJournal, writeJournal, clearJournal } from '../../harness/journal.ts';
import { RealLab } from '../../harness/lab/real.ts';
import { loadTopology } from '../../harness/topology/load.ts';
import { replayUndoJournal, UndoStack, type UndoAction } from '../../harness/workload/undo.ts';

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
});
