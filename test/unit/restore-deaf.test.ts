// Restoring leftovers when a node does not answer (a crash left it dead): it is asked once, not once
// per journal entry — each ask waits out the SSH handshake (L1: 137 s of "ready: leftovers" on a
// panicked node before its reboot). Real parts: a local node, and an SSH node whose host accepts
// TCP but never speaks SSH (the connection counted at the listener).
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { restoreLeftovers } from '../../harness/fixture/restore.ts';
import { clearJournal, readJournal, writeJournal } from '../../harness/journal.ts';
import { RealLab } from '../../harness/lab/real.ts';
import { loadTopology } from '../../harness/topology/load.ts';
import type { UndoAction } from '../../harness/workload/undo.ts';

const LAB = 'rf-restore-deaf-unit';

describe('restoring leftovers: a node that does not answer is asked once', () => {
  let dir: string;
  let silent: Server;
  let connections = 0;
  let lab: RealLab;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rf-deaf-'));
    silent = createServer(() => void connections++);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as { port: number }).port;
    const f = join(dir, 'lab.yaml');
    writeFileSync(
      f,
      `name: ${LAB}\nkind: real\nnodes:\n  - name: here\n    access: { type: local }\n  - name: gone\n    access: { type: ssh, host: 127.0.0.1, port: ${port}, user: root, connect_timeout_ms: 1000, host_key: { sha256: "SHA256:${'A'.repeat(43)}" } }\n`,
    );
    lab = new RealLab(loadTopology(f));
  });
  after(async () => {
    await lab?.close();
    silent?.close();
    for (const k of ['procs', 'undo', 'trace']) clearJournal(k, LAB);
    rmSync(dir, { recursive: true, force: true });
  });

  it('its processes, undos and trace instances stay journaled, untried after the first; the answering node is restored', async () => {
    const here = join(dir, 'made-here');
    writeFileSync(here, 'x');
    const undo = (node: string, argv: string[]): UndoAction => ({ id: randomUUID(), owner: 'unit', node, what: `${argv.join(' ')}`, kind: 'argv', argv });
    writeJournal('procs', LAB, [1, 2, 3].map((i) => ({ id: randomUUID(), node: 'gone', what: `monitor ${i}`, pid: 4000 + i, pgid: 4000 + i, startTime: '1' })));
    writeJournal('undo', LAB, [undo('gone', ['true']), undo('here', ['rm', here]), undo('gone', ['true']), undo('gone', ['true'])]);
    writeJournal('trace', LAB, { gone: ['/sys/kernel/tracing/instances/rf-1-1'] });
    const t0 = Date.now();
    const r = await restoreLeftovers(lab);
    const ms = Date.now() - t0;
    expect(connections, 'one SSH connection attempt in all').to.equal(1);
    expect(ms, 'one handshake timeout (1 s), not one per entry').to.be.lessThan(2500);
    expect(existsSync(here), "the answering node's undo ran").to.equal(false);
    expect(r.done).to.include.members(['workload: FAILED gone: 3 undo(s) not tried: the node does not answer', 'trace: FAILED gone: 1 trace instance(s) not removed: the node does not answer']);
    expect(r.done.filter((d) => /^process: FAILED gone/.test(d))).to.have.length(2); // the one tried, and "2 more not tried"
    expect(readJournal<unknown[]>('procs', LAB)).to.have.length(3);
    expect((readJournal<UndoAction[]>('undo', LAB) ?? []).map((a) => a.node)).to.deep.equal(['gone', 'gone', 'gone']);
    expect(readJournal('trace', LAB)).to.deep.equal({ gone: ['/sys/kernel/tracing/instances/rf-1-1'] });
  });
});
