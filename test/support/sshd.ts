// A real OpenSSH server on 127.0.0.1 for transport tests: fresh host and user keys in a temp dir,
// a free port, stopped afterwards. Logs in as the dedicated test user (scripts/setup.sh creates it)
// whose shell reads no rc files, so timings measure the transport, not someone's .bashrc.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, rmSync, chmodSync, existsSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fingerprint } from '../../harness/node/hostkey.ts';
import { sleep } from '../../harness/clock.ts';

export const TEST_USER = 'rf-test';

export interface Sshd {
  host: string;
  port: number;
  user: string;
  dir: string;
  clientKey: Buffer;
  clientKeyFile: string;
  hostKeyBlob: Buffer;
  hostKeyFingerprint: string;
  /** every host key the server has (type as in known_hosts, e.g. ecdsa-sha2-nistp256) */
  hostKeys: { type: string; blob: Buffer; fingerprint: string }[];
  knownHostsFile: string;
  proc: ChildProcess;
  /** PIDs of the per-connection sshd processes (all sshd processes below the listener). */
  connectionPids(): number[];
  stop(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (a && typeof a === 'object' ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

export function requireTestUser(): void {
  try {
    execFileSync('id', ['-u', TEST_USER], { stdio: 'ignore' });
  } catch {
    throw new Error(`test user ${TEST_USER} is missing: run scripts/setup.sh (it creates it)`);
  }
}

function keygen(file: string, type: 'ed25519' | 'ecdsa' | 'rsa' = 'ed25519'): void {
  execFileSync('ssh-keygen', ['-q', '-t', type, ...(type === 'rsa' ? ['-b', '2048'] : []), '-N', '', '-C', 'rf-test', '-f', file], { stdio: 'ignore' });
}

export async function startSshd(opts: { maxSessions?: number; user?: string; hostKeyTypes?: ('ed25519' | 'ecdsa' | 'rsa')[] } = {}): Promise<Sshd> {
  if (!existsSync('/usr/sbin/sshd')) throw new Error('/usr/sbin/sshd missing: run scripts/setup.sh (openssh-server)');
  const user = opts.user ?? TEST_USER;
  if (user === TEST_USER) requireTestUser();
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 }); // sshd's privilege separation directory
  const dir = mkdtempSync(join(tmpdir(), 'rf-sshd-'));
  chmodSync(dir, 0o755);
  const types = opts.hostKeyTypes ?? ['ed25519'];
  const hostKeyFiles = types.map((t) => join(dir, `host_${t}`));
  types.forEach((t, i) => keygen(hostKeyFiles[i]!, t));
  const clientKeyFile = join(dir, 'client_ed25519');
  keygen(clientKeyFile);
  const authorized = join(dir, 'authorized_keys');
  writeFileSync(authorized, readFileSync(`${clientKeyFile}.pub`));
  chmodSync(authorized, 0o644);
  const port = await freePort();
  const config = join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      ...hostKeyFiles.map((f) => `HostKey ${f}`),
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${authorized}`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      `MaxSessions ${opts.maxSessions ?? 10}`,
      'MaxStartups 100',
      'UseDNS no',
      'PrintMotd no',
      'LogLevel ERROR',
      '',
    ].join('\n'),
  );
  const proc = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const hostKeys = hostKeyFiles.map((f) => {
    const [type = '', b64 = ''] = readFileSync(`${f}.pub`, 'utf8').split(' ');
    const blob = Buffer.from(b64, 'base64');
    return { type, blob, fingerprint: fingerprint(blob) };
  });
  const hostKeyBlob = hostKeys[0]!.blob;
  const knownHostsFile = join(dir, 'known_hosts');
  writeFileSync(knownHostsFile, hostKeys.map((k) => `[127.0.0.1]:${port} ${k.type} ${k.blob.toString('base64')}\n`).join(''));
  // Wait until it accepts connections.
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`sshd exited: ${stderr}`);
    const up = await new Promise<boolean>((res) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), res(true)));
      s.once('error', () => res(false));
    });
    if (up) break;
    if (Date.now() > deadline) throw new Error(`sshd did not listen on ${port}: ${stderr}`);
    await sleep(50);
  }
  return {
    host: '127.0.0.1',
    port,
    user,
    dir,
    clientKey: readFileSync(clientKeyFile),
    clientKeyFile,
    hostKeyBlob,
    hostKeyFingerprint: fingerprint(hostKeyBlob),
    hostKeys,
    knownHostsFile,
    proc,
    connectionPids() {
      // every sshd process below the listener: the privileged monitor and the network child
      const below = (pid: number): number[] => {
        let kids: number[];
        try {
          kids = execFileSync('pgrep', ['-P', String(pid), '-x', 'sshd'], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number);
        } catch {
          return [];
        }
        return kids.flatMap((k) => [k, ...below(k)]);
      };
      return proc.pid ? below(proc.pid) : [];
    },
    async stop() {
      if (proc.exitCode === null) {
        proc.kill('SIGTERM');
        await new Promise((r) => proc.once('exit', r));
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
