// A Ctrl-C that lands the moment `run` has started its suites process is still one orderly stop
// (exit 130), never the runner killed outright with its suites left running alone. The runner used
// to install its signal forwarding after the spawn: stopped at the first sight of the suites process,
// 3 of 20 runs died by SIGINT (CI, stop 26). No lab: the selection is empty and the topology local.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, cli } from '../support/cli.ts';

const KILLED = 'test/fixtures/specs/killed.fixture.ts';

const TRIES = 10;
/** An orderly stop with no lab takes a second or two. */
const STOP_BOUND_MS = 20_000;

/** Starts `run`, sends its group SIGINT as soon as its suites process exists; the exit status. */
async function stopAtSpawn(reports: string): Promise<{ code: number | null; signal: string | null; output: string; seen: string }> {
  const args = ['run', '-t', 'topologies/local.yaml', '--grep', 'no test is called this', '--reports', reports];
  const child = spawn(BIN, args, { env: { ...process.env, NO_COLOR: '1', RDMA_FAILOVER_PDF: '0' }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const closed = new Promise<{ code: number | null; signal: string | null }>((res) => child.on('close', (code, signal) => res({ code, signal })));
  const t0 = Date.now();
  // Any child, polled without a pause from /proc (pgrep is too slow to see it): the window is
  // between the fork and the runner's next statement. (tsx's esbuild service would be a child too,
  // while the runner loads: the warm-up run below fills tsx's cache so that it is not started.)
  const children = `/proc/${child.pid}/task/${child.pid}/children`;
  let kids = '';
  while (Date.now() - t0 < 30_000 && !(kids = readFileSync(children, 'utf8').trim()));
  const sentAt = Date.now() - t0;
  process.kill(-child.pid!, 'SIGINT');
  // What the stop landed on, for a failure's message: when, on which child, and that child's state
  // just after (read after the kill, so that the diagnosis does not widen the window under test).
  const first = kids.split(' ')[0];
  const state = first ? (() => { try { return /^State:\s*(.*)$/m.exec(readFileSync(`/proc/${first}/status`, 'utf8'))?.[1] ?? '?'; } catch { return 'gone'; } })() : '';
  const seen = first ? `SIGINT ${sentAt} ms after the spawn, at child ${first} (just after: ${state})` : `no child within ${sentAt} ms; SIGINT then`;
  // A runner that does not end after the stop fails its try, and is not left running: its group
  // (the runner and its suites, ours by PID) is killed.
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<{ code: number | null; signal: string | null }>((res) => {
    timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // ended meanwhile
      }
      res({ code: null, signal: `still running ${STOP_BOUND_MS} ms after SIGINT (killed)` });
    }, STOP_BOUND_MS);
  });
  const ended = await Promise.race([closed, hung]);
  clearTimeout(timer);
  return { ...ended, output, seen: `${seen}; ended ${Date.now() - t0} ms after the spawn` };
}

describe('rdma-failover run: Ctrl-C the moment the suites start', function () {
  this.timeout(TRIES * 30_000);
  const dir = mkdtempSync(join(tmpdir(), 'rf-stop-race-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  before(async function () {
    const warm = await cli(['run', '-t', 'topologies/local.yaml', '--grep', 'no test is called this', '--reports', join(dir, 'warm')], { env: { RDMA_FAILOVER_PDF: '0' } });
    expect(warm.code, warm.stderr).to.equal(0);
  });

  it(`exits 130 every time, with the stop said (${TRIES} tries)`, async () => {
    for (let i = 0; i < TRIES; i++) {
      const r = await stopAtSpawn(join(dir, String(i)));
      expect({ try: i, code: r.code, signal: r.signal }, `${r.seen}\n${r.output.slice(-2000)}`).to.deep.equal({ try: i, code: 130, signal: null });
      expect(r.output).to.match(/SIGINT: (stopping|the suites ended)/);
    }
  });

  // The same stop when the suites die of the group's SIGINT before the runner ran its handler; and
  // never a silent exit 1 when they die of any other signal (CI: "code 1" with no output at all).
  it('a suites process killed by SIGINT before any handler is a stop: exit 130, said', async () => {
    const r = await cli(['run', '-t', 'topologies/local.yaml', KILLED, '--reports', join(dir, 'int')], { env: { RDMA_FAILOVER_PDF: '0', RF_FIXTURE_SIGNAL: 'SIGINT' } });
    expect(r.code, r.stderr).to.equal(130);
    expect(r.stderr).to.match(/SIGINT: the suites ended \(killed by SIGINT\) before an orderly stop/);
  });

  it('a suites process killed by another signal: exit 1, the signal named', async () => {
    const r = await cli(['run', '-t', 'topologies/local.yaml', KILLED, '--reports', join(dir, 'kill')], { env: { RDMA_FAILOVER_PDF: '0', RF_FIXTURE_SIGNAL: 'SIGKILL' } });
    expect(r.code, r.stderr).to.equal(1);
    expect(r.stderr).to.match(/the suites process was killed by SIGKILL/);
  });
});
