// ConsoleWatch: lab up and a reboot try SSH when the guest's console shows it is ready. A mark from
// an earlier boot must not count, and a mark split between two reads must.
import { expect } from 'chai';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConsoleWatch, READY_MARK } from '../../harness/vmlab/console.ts';

describe('ConsoleWatch (the guest says on its console when it is ready)', () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'rf-console-'));
    file = join(dir, 'console.log');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('no log yet, then a log without the mark: not seen; the mark appended: seen, and stays seen', () => {
    const w = new ConsoleWatch(file, 0, READY_MARK);
    expect(w.seen()).to.equal(false);
    writeFileSync(file, '[    1.0] Linux version 6.1\n');
    expect(w.seen()).to.equal(false);
    appendFileSync(file, `[    6.9] ${READY_MARK}\n`);
    expect(w.seen()).to.equal(true);
    expect(w.seen(), 'nothing new to read').to.equal(true);
  });

  it('a mark written before the offset (the boot before a reset) does not count', () => {
    writeFileSync(file, `[    6.9] ${READY_MARK}\n[   40.0] Kernel panic - not syncing: sysrq\n`);
    const from = Buffer.byteLength(`[    6.9] ${READY_MARK}\n[   40.0] Kernel panic - not syncing: sysrq\n`);
    const w = new ConsoleWatch(file, from, READY_MARK);
    expect(w.seen()).to.equal(false);
    appendFileSync(file, '[    0.0] Linux version 6.1\n');
    expect(w.seen()).to.equal(false);
    appendFileSync(file, `[    7.1] ${READY_MARK}\n`);
    expect(w.seen()).to.equal(true);
  });

  it('a mark split between two reads, at every split point, is found', () => {
    const line = `[    6.9] ${READY_MARK}\n`;
    for (let cut = 1; cut < line.length; cut++) {
      writeFileSync(file, 'boot\n');
      const w = new ConsoleWatch(file, 0, READY_MARK);
      appendFileSync(file, line.slice(0, cut));
      const early = w.seen();
      appendFileSync(file, line.slice(cut));
      expect(early || w.seen(), `cut at ${cut}`).to.equal(true);
      expect(early, `cut at ${cut}: the whole mark was not there yet`).to.equal(cut >= line.indexOf(READY_MARK) + READY_MARK.length);
    }
  });

  it('another text is not the mark, and a truncated log is read from its start', () => {
    writeFileSync(file, 'rf-guest: stage 1 done\n'.repeat(50));
    const w = new ConsoleWatch(file, 0, READY_MARK);
    expect(w.seen()).to.equal(false);
    writeFileSync(file, `${READY_MARK}\n`);
    expect(w.seen(), 'the log was replaced by a shorter one').to.equal(true);
  });
});
