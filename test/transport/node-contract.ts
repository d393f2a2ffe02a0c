// The behaviour every Node must have, run against LocalNode and against SshNode on a real sshd.
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { firstValueFrom, lastValueFrom, toArray, take, timer, map } from 'rxjs';
import { CommandFailedError, CommandTimeoutError, FileWriteError, type Node } from '../../harness/node/node.ts';
import { CommandGate, CommandRefusedError, outsideGates } from '../../harness/node/gate.ts';
import { sleep } from '../../harness/clock.ts';

/** Is the process alive on this machine? (both node kinds run here in tests). Zombies count as dead. */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

export function nodeContract(getNode: () => Node, scratch: () => string): void {
  it('returns exit codes without throwing, and run() throws on non-zero', async () => {
    const node = getNode();
    expect((await node.exec(['true'])).exitCode).to.equal(0);
    const r = await node.exec(['sh', '-c', 'exit 3']);
    expect(r.exitCode).to.equal(3);
    expect(r.signal).to.equal(null);
    const err = await node.run(['sh', '-c', 'echo boom >&2; exit 4']).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(CommandFailedError);
    expect((err as Error).message).to.match(/exited with 4: boom/);
  });

  it('reports the signal that killed a command', async () => {
    const r = await getNode().exec(['sh', '-c', 'kill -TERM $$']);
    expect(r.exitCode).to.equal(null);
    expect(r.signal).to.equal('SIGTERM');
  });

  it('keeps stdout and stderr apart', async () => {
    const r = await getNode().exec(['sh', '-c', 'echo out1; echo err1 >&2; echo out2; echo err2 >&2']);
    expect(r.stdout).to.equal('out1\nout2\n');
    expect(r.stderr).to.equal('err1\nerr2\n');
  });

  it('passes arguments verbatim: no shell interpretation of values', async () => {
    const nasty = ["it's", '$(touch /tmp/pwned)', '`id`', 'a b', '"q"', 'semi;colon', 'new\nline', '*', '', '\\'];
    const r = await getNode().run(['printf', '%s\\0', ...nasty]);
    expect(r.stdout.split('\0').slice(0, -1)).to.deep.equal(nasty);
  });

  it('passes environment variables', async () => {
    const r = await getNode().run(['sh', '-c', 'printf %s "$RF_X"'], { env: { RF_X: "va'lue $HOME" } });
    expect(r.stdout).to.equal("va'lue $HOME");
  });

  it('feeds stdin', async () => {
    const r = await getNode().run(['wc', '-c'], { input: Buffer.alloc(100_000, 7) });
    expect(r.stdout.trim()).to.equal('100000');
  });

  it('carries large output intact (16 MiB)', async function () {
    this.timeout(60_000);
    const file = `${scratch()}/big`;
    const r = await getNode().run(['sh', '-c', 'head -c 16777216 /dev/urandom | base64 -w0 > "$1"; sha256sum < "$1" >&2; cat "$1"', 'sh', file], { timeoutMs: 50_000 });
    expect(r.stdout.length).to.equal(Math.ceil(16777216 / 3) * 4);
    expect(createHash('sha256').update(r.stdout).digest('hex')).to.equal(r.stderr.split(' ')[0]);
  });

  it('ends a command at its timeout, with its whole process group', async () => {
    const node = getNode();
    const pidFile = `${scratch()}/timeout.pids`;
    const t0 = Date.now();
    const err = await node
      .exec(['sh', '-c', `sleep 300 & echo $! > ${pidFile}; echo $$ >> ${pidFile}; wait`], { timeoutMs: 800 })
      .catch((e: unknown) => e);
    expect(err).to.be.instanceOf(CommandTimeoutError);
    expect(Date.now() - t0).to.be.lessThan(6000);
    const pids = (await node.readFile(pidFile)).trim().split('\n').map(Number);
    expect(pids).to.have.length(2);
    await sleep(200);
    for (const pid of pids) expect(alive(pid), `pid ${pid} still running`).to.equal(false);
  });

  it('streams lines as they come and completes on exit 0', async () => {
    const lines = await lastValueFrom(
      getNode().stream(['sh', '-c', 'for i in 1 2 3; do echo line$i; sleep 0.2; done; echo warn >&2']).pipe(toArray()),
    );
    expect(lines.filter((l) => l.stream === 'stdout').map((l) => l.text)).to.deep.equal(['line1', 'line2', 'line3']);
    expect(lines.filter((l) => l.stream === 'stderr').map((l) => l.text)).to.deep.equal(['warn']);
    const stdout = lines.filter((l) => l.stream === 'stdout');
    // lines were delivered while the command ran, not all at the end
    expect(stdout[2]!.at - stdout[0]!.at).to.be.greaterThan(250);
  });

  it('errors a stream on non-zero exit, and on timeout', async () => {
    const failed = await lastValueFrom(getNode().stream(['sh', '-c', 'echo x; exit 5'])).catch((e: unknown) => e);
    expect(failed).to.be.instanceOf(CommandFailedError);
    const timedOut = await lastValueFrom(getNode().stream(['sleep', '30'], { timeoutMs: 500 })).catch((e: unknown) => e);
    expect(timedOut).to.be.instanceOf(CommandTimeoutError);
  });

  it('stops the remote command when a stream is unsubscribed', async () => {
    const node = getNode();
    const pidFile = `${scratch()}/stream.pid`;
    const first = await firstValueFrom(node.stream(['sh', '-c', `echo $$ > ${pidFile}; while :; do echo tick; sleep 0.1; done`]));
    expect(first.text).to.equal('tick');
    await node.settle();
    const pid = Number((await node.readFile(pidFile)).trim());
    await sleep(200);
    expect(alive(pid), `streaming pid ${pid} still running after unsubscribe`).to.equal(false);
  });

  it('writes a stream of input to a command', async () => {
    const input = timer(0, 50).pipe(take(3), map((i) => `q${i}\n`));
    const lines = await lastValueFrom(getNode().stream(['sh', '-c', 'while read -r l; do echo "a:$l"; done'], { input }).pipe(toArray()));
    expect(lines.map((l) => l.text)).to.deep.equal(['a:q0', 'a:q1', 'a:q2']);
  });

  it('reads and writes small files; write errors carry errno', async () => {
    const node = getNode();
    const f = `${scratch()}/value`;
    await node.writeFile(f, 'hello world\n');
    expect(await node.readFile(f)).to.equal('hello world\n');
    const big = 'x'.repeat(200_000);
    await node.writeFile(f, big);
    expect((await node.readFile(f)).length).to.equal(200_000);
    const err = await node.writeFile(`${scratch()}/no/such/dir/file`, '1').catch((e: unknown) => e);
    expect(err).to.be.instanceOf(FileWriteError);
    expect((err as FileWriteError).errno).to.equal('ENOENT');
  });

  describe('behind the gate of a stopped test (node/gate.ts)', () => {
    it('runs while open; once closed, refuses a new exec, run, readFile, writeFile and stream — as a rejection, never a throw', async () => {
      const node = getNode();
      const gate = new CommandGate();
      const before = await gate.run(() => node.run(['echo', 'ok']));
      expect(before.stdout).to.equal('ok\n');
      gate.close('the deadline passed');
      const f = `${scratch()}/gated`;
      const tries = await gate.run(() =>
        Promise.all([
          node.exec(['touch', f]).catch((e: unknown) => e),
          node.run(['touch', f]).catch((e: unknown) => e),
          node.readFile('/etc/hostname').catch((e: unknown) => e),
          node.writeFile(f, 'x').catch((e: unknown) => e),
          lastValueFrom(node.stream(['touch', f])).catch((e: unknown) => e),
        ]),
      );
      for (const e of tries) {
        expect(e).to.be.instanceOf(CommandRefusedError);
        expect((e as Error).message).to.match(/not run: the test that started it has stopped \(the deadline passed\)/);
      }
      expect(existsSync(f), 'a refused command ran').to.equal(false);
    });

    it('stops a command in flight at the close, with its process group; stopped() resolves once it ended', async () => {
      const node = getNode();
      const gate = new CommandGate();
      const pidFile = `${scratch()}/gate.pids`;
      const running = gate.run(() => node.exec(['sh', '-c', `sleep 300 & echo $! > ${pidFile}; echo $$ >> ${pidFile}; wait`], { timeoutMs: 120_000 })).catch((e: unknown) => e);
      while (!existsSync(pidFile) || readFileSync(pidFile, 'utf8').trim().split('\n').length < 2) await sleep(20);
      const t0 = Date.now();
      gate.close('Ctrl-C');
      await gate.stopped();
      expect(Date.now() - t0, 'the stop is bounded (TERM, KILL after the grace)').to.be.lessThan(6000);
      const err = await running;
      expect(err).to.be.instanceOf(CommandRefusedError);
      expect((err as Error).message).to.match(/stopped: the test that started it has stopped \(Ctrl-C\)/);
      await sleep(200);
      for (const pid of readFileSync(pidFile, 'utf8').trim().split('\n').map(Number)) expect(alive(pid), `pid ${pid} still running`).to.equal(false);
      expect(gate.size, 'nothing left in flight').to.equal(0);
    });

    it('reaches commands started at any depth of the body (after awaits and timers); outsideGates escapes it; other bodies are not affected', async () => {
      const node = getNode();
      const stopped = new CommandGate();
      const other = new CommandGate();
      const deep = stopped.run(async () => {
        await sleep(50);
        await new Promise((res) => setTimeout(res, 50));
        return node.exec(['true']).catch((e: unknown) => e);
      });
      const outside = stopped.run(async () => {
        await sleep(100);
        return outsideGates(() => node.exec(['true']));
      });
      const unaffected = other.run(async () => {
        await sleep(100);
        return node.exec(['true']);
      });
      stopped.close('the lab broke');
      expect(await deep).to.be.instanceOf(CommandRefusedError);
      expect((await outside).exitCode).to.equal(0);
      expect((await unaffected).exitCode).to.equal(0);
      expect((await node.exec(['true'])).exitCode, 'outside any gate').to.equal(0);
    });

    it('leaves a stream already running to its owner (a monitor is ended by its teardown)', async () => {
      const node = getNode();
      const gate = new CommandGate();
      const lines: string[] = [];
      const sub = gate.run(() => node.stream(['sh', '-c', 'while :; do echo tick; sleep 0.1; done']).subscribe({ next: (l) => lines.push(l.text), error: () => lines.push('ERROR') }));
      while (!lines.length) await sleep(20);
      gate.close('the deadline passed');
      await gate.stopped();
      const n = lines.length;
      await sleep(500);
      sub.unsubscribe();
      expect(lines.length, 'it kept running').to.be.greaterThan(n + 2);
      expect(lines).to.not.include('ERROR');
    });
  });
}
