import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalNode } from '../../harness/node/local.ts';
import { FileWriteError } from '../../harness/node/node.ts';
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

  it('reports a missing program as exit 127', async () => {
    const r = await node.exec(['rf-no-such-program']);
    expect(r.exitCode).to.equal(127);
  });
});
