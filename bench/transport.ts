// Benchmark: N `true` commands through one warm SshNode (through its command agent, and with a
// channel per command) vs N separate `ssh -o BatchMode=yes host true` (what shell harnesses do), all
// against the same local OpenSSH server, in one run.
// Usage: npm run bench:transport [-- N]
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { SshNode } from '../harness/node/ssh.ts';
import { pinnedPolicy } from '../harness/node/hostkey.ts';
import { startSshd } from '../test/support/sshd.ts';

const N = Number(process.argv[2] ?? 200);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

const sshd = await startSshd();
try {
  const node = new SshNode({ name: 'bench', host: sshd.host, port: sshd.port, user: sshd.user, privateKey: sshd.clientKey, hostKey: pinnedPolicy(sshd.hostKeyFingerprint) });
  await node.run(['true']); // warm: connection established
  const warm: number[] = [];
  let lost = 0;
  const timed = async (into?: number[]) => {
    const t = performance.now();
    try {
      await node.run(['true']);
    } catch (e) {
      lost++;
      console.error(`lost: ${(e as Error).message}`);
    }
    into?.push(performance.now() - t);
  };
  for (let i = 0; i < N; i++) await timed(warm);
  // The same connection under 8 concurrent commands (what monitors + a workload do): nothing may be lost.
  const t8 = performance.now();
  for (let r = 0; r < N / 8; r++) await Promise.all(Array.from({ length: 8 }, () => timed()));
  const concurrentS = (performance.now() - t8) / 1000;
  await node.close();
  // The same warm connection without the agent: a channel (an sshd session and a shell) per command.
  const chan = new SshNode({ name: 'bench-chan', host: sshd.host, port: sshd.port, user: sshd.user, privateKey: sshd.clientKey, hostKey: pinnedPolicy(sshd.hostKeyFingerprint), commandAgent: false });
  await chan.run(['true']);
  const channel: number[] = [];
  for (let i = 0; i < N; i++) {
    const t = performance.now();
    await chan.run(['true']);
    channel.push(performance.now() - t);
  }
  await chan.close();

  const cold: number[] = [];
  const args = ['-o', 'BatchMode=yes', '-o', `UserKnownHostsFile=${sshd.knownHostsFile}`, '-o', 'StrictHostKeyChecking=yes', '-i', sshd.clientKeyFile, '-p', String(sshd.port), `${sshd.user}@${sshd.host}`, 'true'];
  for (let i = 0; i < N; i++) {
    const t = performance.now();
    const r = spawnSync('ssh', args, { stdio: 'ignore' });
    cold.push(performance.now() - t);
    if (r.status !== 0) throw new Error(`ssh exited ${r.status}`);
  }
  const mw = median(warm);
  const mc = median(cold);
  console.log(`transport benchmark: ${N} × \`true\` against OpenSSH on 127.0.0.1 (same server, same key)`);
  console.log(`  warm SshNode (its command agent):   median ${mw.toFixed(2)} ms  p90 ${pct(warm, 90).toFixed(2)} ms  total ${(warm.reduce((a, b) => a + b, 0) / 1000).toFixed(2)} s`);
  console.log(`  warm SshNode, a channel each:      median ${median(channel).toFixed(2)} ms  p90 ${pct(channel, 90).toFixed(2)} ms  total ${(channel.reduce((a, b) => a + b, 0) / 1000).toFixed(2)} s`);
  console.log(`  ssh -o BatchMode=yes per command:  median ${mc.toFixed(2)} ms  p90 ${pct(cold, 90).toFixed(2)} ms  total ${(cold.reduce((a, b) => a + b, 0) / 1000).toFixed(2)} s`);
  console.log(`  ratio (median): ${(mc / mw).toFixed(1)}× faster with the warm SshNode`);
  console.log(`  warm SshNode, ${N} more in rounds of 8 concurrent: ${concurrentS.toFixed(2)} s`);
  console.log(`  lost commands: ${lost} of ${2 * N}`);
  if (lost) process.exitCode = 1;
} finally {
  await sshd.stop();
}
