// The bounded `rdma link delete` of the fabric's teardown (fabric.ts LINK_DELETE), run for real by
// bash on this machine with an `rdma` that stands in for the kernel: one that returns, one that
// fails, and one that never returns (a device still held: the real one sits in D state).
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FABRIC_DOWN, LINK_DELETE } from '../../harness/fabric/fabric.ts';

describe('the fabric teardown: a bounded rdma link delete', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'rf-linkdel-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** Runs link_delete with `rdma` doing BODY; its output and how long it took. */
  const run = (body: string, tenths: number): { out: string; ms: number } => {
    writeFileSync(join(dir, 'rdma'), `#!/bin/sh\n${body}\n`);
    chmodSync(join(dir, 'rdma'), 0o755);
    const script = `problem() { printf 'rf-problem %s: %s\\n' "$1" "$2"; }\n${LINK_DELETE}\nlink_delete rxe0 ${tenths}; echo done`;
    const t0 = Date.now();
    const out = execFileSync('bash', ['-c', script], { env: { ...process.env, PATH: `${dir}:${process.env.PATH}` }, encoding: 'utf8', timeout: 20_000 });
    return { out, ms: Date.now() - t0 };
  };

  it('a delete that returns: no problem, at once', () => {
    const r = run('exit 0', 50);
    expect(r.out).to.equal('done\n');
    expect(r.ms).to.be.below(2000);
  });

  it('a delete that fails: its error told', () => {
    expect(run('echo "error: No such device" >&2; exit 1', 50).out).to.equal('rf-problem rdma link delete rxe0: error: No such device\ndone\n');
    expect(run('exit 3', 50).out).to.equal('rf-problem rdma link delete rxe0: exit 3\ndone\n');
  });

  it('a delete that never returns: given up at the bound, told, and the script goes on', () => {
    // (it ignores the signals \`timeout\` would send, as a task in D state does not act on them)
    const r = run("trap '' TERM INT HUP; i=0; while [ $i -lt 30 ]; do sleep 1; i=$((i + 1)); done", 10);
    expect(r.out).to.equal('rf-problem rdma link delete rxe0: did not return within 1 s (its device is still held)\ndone\n');
    expect(r.ms).to.be.within(900, 3000);
  });

  it('the fabric teardown script that carries it parses (bash -n)', () => {
    expect(FABRIC_DOWN).to.include('link_delete() {');
    execFileSync('bash', ['-n', '-c', FABRIC_DOWN]);
  });
});
