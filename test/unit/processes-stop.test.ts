// The script that stops what a killed run left on a node, run for real on this machine's own
// processes (started here, in their own sessions), under dash — the sh of Debian guests — and bash.
import { expect } from 'chai';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { STOP_IF_SAME } from '../../harness/lab/processes.ts';
import { sleep } from '../../harness/clock.ts';

/** start time (clock ticks since boot) and PGID of a local process; undefined once it is gone */
function stat(pid: number): { st: string; pgid: number; state: string } | undefined {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
    return { state: f[0]!, pgid: Number(f[2]), st: f[19]! };
  } catch {
    return undefined;
  }
}
const alive = (pid: number): boolean => {
  const s = stat(pid);
  return !!s && s.state !== 'Z';
};

/** A command in its own session (as sshd starts one): its leader's PID and start time. */
async function session(script: string): Promise<{ pid: number; st: string; kill: () => void }> {
  const c = spawn('sh', ['-c', script], { detached: true, stdio: 'ignore' });
  c.unref();
  await sleep(150);
  const pid = c.pid!;
  const st = stat(pid)?.st ?? '0';
  return { pid, st, kill: () => {
      // process.kill, not kill(1): procps-ng 4.0.2 reads `kill -KILL -113` (no such group) as kill -1
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // gone already
      }
    },
  };
}

/** the processes in group `pgid` (the left members) */
const members = (pgid: number): number[] =>
  execFileSync('sh', ['-c', 'cat /proc/[0-9]*/stat 2>/dev/null | awk -v g="$1" \'{ p = $1; sub(/^.*\\) /, ""); if ($3 == g && $1 != "Z") print p }\'', 'm', String(pgid)], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map(Number);

function stop(shell: string, pid: number, pgid: number, st: string): { out: string; code: number | null } {
  const r = spawnSync(shell, ['-c', STOP_IF_SAME, 'stop-left', String(pid), String(pgid), st], { encoding: 'utf8', timeout: 15_000 });
  return { out: `${r.stdout}${r.stderr}`.trim(), code: r.status };
}

const shells = ['dash', 'bash'].filter((s) => spawnSync(s, ['-c', ':']).status === 0);

describe('stopping what a killed run left: the leader and what is left of its group, nothing else', function () {
  this.timeout(30_000);
  for (const shell of shells) {
    it(`${shell}: a shell loop and the reader it runs both stop`, async () => {
      const s = await session('while sleep 1000; do :; done');
      try {
        const before = members(s.pid);
        expect(before.length, 'the loop and its sleep').to.equal(2);
        const r = stop(shell, s.pid, s.pid, s.st);
        expect(r.out).to.equal('stopped');
        expect(before.filter(alive), 'left running').to.deep.equal([]);
      } finally {
        s.kill();
      }
    });

    it(`${shell}: the leader gone, the reader it left in the group is still stopped (what once held a trace instance)`, async () => {
      const s = await session('sleep 1000 & exit 0');
      try {
        await sleep(100);
        expect(alive(s.pid), 'the leader has exited').to.equal(false);
        const left = members(s.pid);
        expect(left.length, 'its sleep is left').to.equal(1);
        const r = stop(shell, s.pid, s.pid, s.st);
        expect(r.out).to.equal('stopped');
        expect(left.filter(alive)).to.deep.equal([]);
      } finally {
        s.kill();
      }
    });

    it(`${shell}: a process that is not the one started (another start time) and another group are left alone`, async () => {
      const s = await session('while sleep 1000; do :; done');
      const other = await session('sleep 1000');
      try {
        const r = stop(shell, s.pid, s.pid, String(Number(s.st) - 1));
        expect(r.out).to.equal('gone');
        expect(members(s.pid).every(alive), 'the group with another start time runs on').to.equal(true);
        expect(stop(shell, s.pid, s.pid, s.st).out).to.equal('stopped');
        expect(alive(other.pid), 'another session untouched').to.equal(true);
      } finally {
        s.kill();
        other.kill();
      }
    });
  }
});
