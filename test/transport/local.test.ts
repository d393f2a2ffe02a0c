import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalNode } from '../../harness/node/local.ts';
import { CommandTimeoutError, FileWriteError } from '../../harness/node/node.ts';
import { alive } from './node-contract.ts';
import { nodeContract } from './node-contract.ts';

describe('LocalNode', function () {
  this.timeout(60_000);
  const node = new LocalNode();
  let scratch: string;
  before(() => (scratch = mkdtempSync(join(tmpdir(), 'rf-local-'))));
  after(async () => {
    await node.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  describe('contract', () => nodeContract(() => node, () => scratch));

  it('a rejected kernel write reports its errno (EINVAL from procfs)', async function () {
    if (process.getuid?.() !== 0) this.skip();
    const err = await node.writeFile('/proc/sys/net/ipv4/ip_forward', 'not-a-number').catch((e: unknown) => e);
    expect(err).to.be.instanceOf(FileWriteError);
    expect((err as FileWriteError).errno).to.equal('EINVAL');
  });

  // A carrier command on a real lab may start a daemon (an ssh control master, a PDU session)
  // that keeps our stdout open: 'close' never comes. The command is done when it exits.
  it('a command that leaves a daemon holding its stdout is done when it exits (bounded), with its output', async () => {
    const pidFile = join(scratch, 'daemon.pid');
    const t0 = Date.now();
    const r = await node.exec(['sh', '-c', 'sleep 30 & echo $! > "$1"; echo started', 'sh', pidFile], { timeoutMs: 20_000 });
    const daemon = Number((await node.readFile(pidFile)).trim());
    try {
      expect(Date.now() - t0).to.be.lessThan(3000);
      expect(r.exitCode).to.equal(0);
      expect(r.stdout).to.equal('started\n');
      expect(r.stderr).to.match(/holds its output open/);
      expect(alive(daemon), 'what the command left behind is not ours to kill').to.equal(true);
    } finally {
      process.kill(daemon, 'SIGKILL');
    }
  });

  it('a stream whose command ignores SIGTERM is killed at its timeout (SIGKILL after the grace)', async () => {
    const pidFile = join(scratch, 'stubborn.pid');
    const t0 = Date.now();
    const err = await new Promise<unknown>((res) =>
      node.stream(['sh', '-c', 'echo $$ > "$1"; trap "" TERM; while :; do sleep 0.1; done', 'sh', pidFile], { timeoutMs: 500 }).subscribe({ error: res, complete: () => res('complete') }),
    );
    expect(err).to.be.instanceOf(CommandTimeoutError);
    expect(Date.now() - t0).to.be.lessThan(5000);
    const pid = Number((await node.readFile(pidFile)).trim());
    await new Promise((r) => setTimeout(r, 100));
    expect(alive(pid)).to.equal(false);
  });

  it('an exec whose command ignores SIGTERM is killed at its timeout too', async () => {
    const t0 = Date.now();
    const err = await node.exec(['sh', '-c', 'trap "" TERM; while :; do sleep 0.1; done'], { timeoutMs: 300, killGraceMs: 300 }).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(CommandTimeoutError);
    expect(Date.now() - t0).to.be.lessThan(3000);
  });

  it('reports a missing program as exit 127', async () => {
    const r = await node.exec(['rf-no-such-program']);
    expect(r.exitCode).to.equal(127);
  });
});
