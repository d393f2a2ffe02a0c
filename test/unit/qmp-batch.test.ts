// qmpBatch's framing, against a stand-in QMP server on a unix socket (the real QEMU is exercised by
// test/lab/both-down.test.ts): the commands go out in one write after the capabilities, answers
// come back in order, and an error names the command that failed.
import { expect } from 'chai';
import { createServer, type Server } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { qmpBatch } from '../../harness/vmlab/qmp.ts';

/** A QMP server that answers each command with its name (or an error for `fail`), recording every
 *  chunk of commands it read. */
function standIn(path: string, chunks: string[][]): Promise<Server> {
  const srv = createServer((c) => {
    c.write('{"QMP": {"version": {}, "capabilities": []}}\n');
    let buf = '';
    c.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      const cmds = lines.filter(Boolean).map((l) => (JSON.parse(l) as { execute: string }).execute);
      if (cmds[0] !== 'qmp_capabilities') chunks.push(cmds);
      for (const x of cmds) c.write(x === 'fail' ? '{"error": {"class": "GenericError", "desc": "no such NIC"}}\n' : `{"event": "NIC_RX_FILTER_CHANGED"}\n{"return": "${x}"}\n`);
    });
  });
  return new Promise((resolve) => srv.listen(path, () => resolve(srv)));
}

describe('qmpBatch: several QMP commands at one instant', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-qmp-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('writes the commands in one go after the capabilities and returns the answers in order', async () => {
    const chunks: string[][] = [];
    const srv = await standIn(join(dir, 'a.sock'), chunks);
    try {
      const answers = await qmpBatch(join(dir, 'a.sock'), [{ command: 'set_link', args: { name: 'nic-eth0', up: false } }, { command: 'query-status' }]);
      expect(answers).to.deep.equal(['set_link', 'query-status']);
      expect(chunks, 'both commands in one write').to.deep.equal([['set_link', 'query-status']]);
    } finally {
      srv.close();
    }
  });

  it('rejects with the failing command named', async () => {
    const srv = await standIn(join(dir, 'b.sock'), []);
    try {
      const err = await qmpBatch(join(dir, 'b.sock'), [{ command: 'set_link' }, { command: 'fail' }]).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(err?.message).to.equal('QMP fail: no such NIC');
    } finally {
      srv.close();
    }
  });
});
