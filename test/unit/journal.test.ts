// Restore journals are per lab: one lab's files are never another's (a lab named "rxe" is not
// "vm-rxe"), and a destroyed VM lab's journals go with it.
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clearLabJournals, listJournals, writeJournal } from '../../harness/journal.ts';

describe('journal: per-lab restore journals', () => {
  let dir: string;
  let saved: string | undefined;
  beforeEach(() => {
    saved = process.env.RDMA_FAILOVER_CACHE;
    dir = mkdtempSync(join(tmpdir(), 'rf-journal-'));
    process.env.RDMA_FAILOVER_CACHE = dir;
    for (const lab of ['vm-rxe', 'rxe', 'vm-rxe-as-real']) for (const kind of ['fabric', 'undo']) writeJournal(kind, lab, { lab });
  });
  afterEach(() => {
    if (saved === undefined) delete process.env.RDMA_FAILOVER_CACHE;
    else process.env.RDMA_FAILOVER_CACHE = saved;
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists a lab\'s journals by exact name, not by suffix', () => {
    expect(listJournals('rxe').sort()).to.deep.equal(['fabric-rxe.json', 'undo-rxe.json']);
    expect(listJournals('vm-rxe').sort()).to.deep.equal(['fabric-vm-rxe.json', 'undo-vm-rxe.json']);
  });

  it('clearing a destroyed lab\'s journals leaves every other lab\'s', () => {
    expect(clearLabJournals('vm-rxe').sort()).to.deep.equal(['fabric-vm-rxe.json', 'undo-vm-rxe.json']);
    expect(listJournals('vm-rxe')).to.deep.equal([]);
    expect(listJournals('rxe')).to.have.length(2);
    expect(listJournals('vm-rxe-as-real')).to.have.length(2);
  });
});
