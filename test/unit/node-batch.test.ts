// nodeBatch: the fabric's kernel changes in one round trip, run for real by bash on this machine
// against files. Each value is one write, in order; the first failure stops the batch and says what
// failed; values are arguments, never shell text.
import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readBefore } from '../../harness/fabric/fabric.ts';
import { nodeBatch } from '../../harness/fabric/sysfs.ts';
import type { BondSpec } from '../../harness/topology/schema.ts';
import { FileWriteError, NodeError } from '../../harness/node/node.ts';
import { LocalNode } from '../../harness/node/local.ts';

describe('nodeBatch (bash, on files)', () => {
  const node = new LocalNode();
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'rf-batch-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('writes, then commands, in order; returns what the commands printed', async () => {
    const a = join(dir, 'a');
    const out = await nodeBatch(node, [{ write: [[a, 'one'], [join(dir, 'b'), '$(touch x) `y` "z"']] }, { run: ['cat', a] }, { run: ['sh', '-c', 'printf "%s|" "$@"', 'x', 'two words', ''] }]);
    expect(out).to.equal('onetwo words||');
    expect(readFileSync(join(dir, 'b'), 'utf8'), 'shell text stays text').to.equal('$(touch x) `y` "z"');
    expect(existsSync(join(process.cwd(), 'x'))).to.equal(false);
  });

  it('a failed write stops the batch: the path and the error, nothing after it done', async () => {
    const after = join(dir, 'after');
    const err = await nodeBatch(node, [{ write: [[join(dir, 'nodir/file'), '1'], [after, '2']] }, { run: ['touch', join(dir, 'ran')] }]).catch((e: Error) => e);
    expect(err).to.be.instanceOf(FileWriteError);
    expect((err as FileWriteError).path).to.equal(join(dir, 'nodir/file'));
    expect(existsSync(after) || existsSync(join(dir, 'ran'))).to.equal(false);
  });

  it('a failed command is named with its stderr, and stops the batch', async () => {
    const err = await nodeBatch(node, [{ run: ['sh', '-c', 'echo broken >&2; exit 3'] }, { write: [[join(dir, 'after'), '1']] }]).catch((e: Error) => e);
    expect(err).to.be.instanceOf(NodeError);
    expect((err as Error).message).to.match(/sh -c echo broken >&2; exit 3 failed \(exit 1\): broken/);
    expect(existsSync(join(dir, 'after'))).to.equal(false);
  });

  it('an ip batch word that is not a name or an address is refused before anything runs', async () => {
    const err = await nodeBatch(node, [{ write: [[join(dir, 'w'), '1']] }, { ip: [['link', 'set', 'dev', 'eth0;reboot', 'up']] }]).catch((e: Error) => e);
    expect((err as Error).message).to.match(/refusing ip batch word "eth0;reboot"/);
    expect(existsSync(join(dir, 'w'))).to.equal(false);
  });
});

describe("the fabric's read before it builds (bash, on this machine's /sys)", () => {
  it('the boot id, the loaded modules, and per bond whether it exists and each slave: exists, state, flags, MTU, master', async () => {
    const before = await readBefore(new LocalNode(), [
      { name: 'rf-no-such-bond', address: '10.0.0.1/24', slaves: [{ name: 'lo' }, { name: 'rf-no-such-nic' }] },
      { name: 'lo', address: '10.0.0.2/24', slaves: [] },
    ] as unknown as BondSpec[]);
    expect(before.baseline.boot).to.equal(readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());
    const modules = existsSync('/proc/modules') ? readFileSync('/proc/modules', 'utf8').split('\n').filter(Boolean).map((l) => l.split(' ')[0]) : [];
    expect(before.baseline.modules, 'none when the kernel has no modules (this machine)').to.deep.equal(modules);
    const mtu = readFileSync('/sys/class/net/lo/mtu', 'utf8').trim();
    const flags = readFileSync('/sys/class/net/lo/flags', 'utf8').trim();
    const state = readFileSync('/sys/class/net/lo/operstate', 'utf8').trim();
    expect(before.bonds.get('rf-no-such-bond')).to.deep.equal([`lo|1|${state}|${flags}|${mtu}|`, 'rf-no-such-nic|0|||0|']);
    expect(before.bonds.get('lo'), 'an existing "bond" is said so').to.deep.equal(['bond-exists']);
  });
});
