// The round-trip log (RDMA_FAILOVER_EXEC_LOG): what a command is, never its values.
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execWhat, noteExec } from '../../harness/node/exec-log.ts';
import type { ExecResult } from '../../harness/node/node.ts';

describe('exec log: one line per remote command, without its values', () => {
  it('names a script by its $0, a program by its subcommand or flag', () => {
    expect(execWhat(['sh', '-c', 'echo "$1" > /dev/kmsg', 'mark', 'rf-mark 42'])).to.equal('sh:mark');
    expect(execWhat(['rdma', '-j', 'res', 'show', 'cm_id'])).to.equal('rdma -j');
    expect(execWhat(['ip', 'link', 'set', 'dev', 'bond0', 'down'])).to.equal('ip link');
    expect(execWhat(['bash', '-c', 'printf "%s" "$1" > "$2"', 'write', '1', '/sys/x'])).to.equal('bash:write');
  });
  it('a value in first place is left out (an address, a path, a name of the topology)', () => {
    expect(execWhat(['ping', '192.168.50.2'])).to.equal('ping');
    expect(execWhat(['cat', '/proc/modules'])).to.equal('cat');
    expect(execWhat(['sh', '-c', 'true', 'secret value'])).to.equal('sh:?');
    expect(execWhat(['bash', '-c', 'true', 'secret value'])).to.equal('bash:?');
  });
  it('writes node, duration and exit once the command settles', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rf-exec-log-'));
    try {
      const f = join(dir, 'log');
      const r = Promise.resolve({ argv: ['true'], exitCode: 0, signal: null, stdout: '', stderr: '', durationMs: 1 } as ExecResult);
      noteExec(f, 'node-a', ['true'], r);
      const failed = Promise.reject(new Error('x'));
      noteExec(f, 'node-b', ['sh', '-c', 'x', 'probe'], failed);
      await r;
      await failed.catch(() => undefined);
      await new Promise((res) => setImmediate(res));
      const lines = readFileSync(f, 'utf8').trim().split('\n').map((l) => l.split('\t').slice(2));
      expect(lines).to.deep.equal([
        ['node-a', 'true', '0'],
        ['node-b', 'sh:probe', 'error'],
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
