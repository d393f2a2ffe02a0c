// The embedded virtual lab: QEMU guests on this machine, two data NICs each on two switches,
// a management NIC that data-link faults cannot cut, and real carrier loss through QEMU.
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, openSync, readSync, closeSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { now, sleep } from '../clock.ts';
import { clearLabJournals } from '../journal.ts';
import { BaseLab, type CarrierControl, type MachineControl, type SwitchPortControl } from '../lab/lab.ts';
import { LocalNode } from '../node/local.ts';
import { pinnedPolicy, fingerprint } from '../node/hostkey.ts';
import { ClockProbe } from '../node/clock-offset.ts';
import { HostKeyError, type Node } from '../node/node.ts';
import { SshNode } from '../node/ssh.ts';
import type { LoadedTopology } from '../topology/load.ts';
import { buildInitramfs, generateKeyPair, writeGuestConfig } from './guest.ts';
import { prepareKernel, type GuestKernel, type KernelChoice } from './kernel.ts';
import { ensureSiw, needsSiw } from './siw.ts';
import { createFabric, createTap, destroyFabric, plugTap, setSwitchPort, netnsExists } from './network.ts';
import { labsDir } from './paths.ts';
import { pvhKernel } from './pvh.ts';
import { qmp, qmpBatch } from './qmp.ts';
import { ConsoleWatch, READY_MARK } from './console.ts';
import { guestGone, isOurGuest, macFor, startQemu } from './qemu.ts';
import { labDir, readState, writeState, type GuestState, type LabState } from './state.ts';

const host = new LocalNode('controller');

export type LabProgress = (step: string, detail?: string) => void;

export class LabError extends Error {
  override name = 'LabError';
}

export function labIdFor(name: string): string {
  return createHash('sha256').update(name).digest('hex').slice(0, 4);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (a && typeof a === 'object' ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** The last bytes of a guest's console, for error messages. */
export function consoleTail(file: string, maxBytes = 3000): string {
  if (!existsSync(file)) return '(no console output)';
  const size = statSync(file).size;
  const start = Math.max(0, size - maxBytes);
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(size - start);
    readSync(fd, buf, 0, buf.length, start);
    // eslint-disable-next-line no-control-regex -- strip terminal escapes the guest may print
    return buf.toString('utf8').replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
  } finally {
    closeSync(fd);
  }
}

/** Console output written after byte `mark` (at most maxBytes, the first ones: an oops comes first). */
export function consoleSince(file: string, mark: number, maxBytes: number): string {
  if (!existsSync(file)) return '';
  const size = statSync(file).size;
  if (size <= mark) return '';
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(Math.min(size - mark, maxBytes));
    readSync(fd, buf, 0, buf.length, mark);
    // eslint-disable-next-line no-control-regex -- terminal escapes
    return buf.toString('utf8').replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
  } finally {
    closeSync(fd);
  }
}

export function kernelChoiceOf(loaded: LoadedTopology, override?: KernelChoice): KernelChoice {
  return override ?? loaded.topology.vm?.kernel ?? 'debian-stable';
}

function guestNode(lab: LabState, g: GuestState, over: { connectTimeoutMs?: number } = {}): SshNode {
  return new SshNode({
    name: g.name,
    host: '127.0.0.1',
    port: g.sshPort,
    user: 'root',
    privateKey: readFileSync(lab.clientKeyFile),
    hostKey: pinnedPolicy(g.hostKeyFingerprint),
    connectTimeoutMs: 20_000,
    keepaliveMs: 3000,
    keepaliveCountMax: 4,
    maxSessions: 64,
    ...over,
  });
}

async function stopGuest(lab: LabState, g: GuestState): Promise<void> {
  if (await guestGone(g.pid, lab.labId, g.name)) return;
  try {
    await qmp(g.qmpSocket, 'quit', undefined, 3000);
  } catch {
    // QMP gone or stuck: signals below
  }
  for (const [sig, waitMs] of [['SIGTERM', 3000], ['SIGKILL', 3000]] as const) {
    const deadline = now() + waitMs;
    while (isOurGuest(g.pid, lab.labId, g.name) && now() < deadline) await sleep(50);
    if (await guestGone(g.pid, lab.labId, g.name)) return;
    // only a process that carries this guest's marker right now is signalled
    if (!isOurGuest(g.pid, lab.labId, g.name)) continue;
    try {
      process.kill(g.pid!, sig);
    } catch {
      return;
    }
  }
}

/** Ends the lab's processes (by PID, after checking they are ours), its namespace, taps and files. */
export async function destroyLab(state: LabState): Promise<void> {
  await Promise.all(state.guests.map((g) => stopGuest(state, g)));
  await destroyFabric(host, state.netns, state.guests.flatMap((g) => g.nics.map((n) => n.tap)));
  rmSync(state.dir, { recursive: true, force: true });
}

export async function labDown(labName: string): Promise<{ wasUp: boolean }> {
  const state = readState(labName);
  if (!state) {
    // No state but maybe a namespace left by a crash before the first state write.
    const netns = `rf-${labName}`;
    if (await netnsExists(host, netns)) await destroyFabric(host, netns, []);
    return { wasUp: false };
  }
  await destroyLab(state);
  // The guests took their kernel state and writable root with them: their restore journals are moot.
  clearLabJournals(labName);
  return { wasUp: true };
}

export interface LabStatus {
  lab: string;
  phase: LabState['phase'] | 'down';
  kernel?: string;
  guests: { name: string; pid?: number; running: boolean; sshPort: number; nics: LabState['guests'][number]['nics'] }[];
  netns?: string;
  stale: boolean;
}

export function labStatus(labName: string): LabStatus {
  const s = readState(labName);
  if (!s) return { lab: labName, phase: 'down', guests: [], stale: false };
  const guests = s.guests.map((g) => ({ name: g.name, ...(g.pid ? { pid: g.pid } : {}), running: isOurGuest(g.pid, s.labId, g.name), sshPort: g.sshPort, nics: g.nics }));
  return {
    lab: s.lab,
    phase: s.phase,
    ...(s.kernel ? { kernel: s.kernel.id } : {}),
    guests,
    netns: s.netns,
    stale: s.phase !== 'up' || guests.some((g) => !g.running),
  };
}

export interface LabUpOptions {
  kernel?: KernelChoice;
  progress?: LabProgress;
  /** Reuse a lab that is already up (default true). */
  reuse?: boolean;
}

/** Brings the lab up: kernel, initramfs, network, guests booted in parallel, SSH verified. */
export async function labUp(loaded: LoadedTopology, opts: LabUpOptions = {}): Promise<VmLab> {
  const t = loaded.topology;
  if (t.kind !== 'vm') throw new LabError(`${loaded.file} is a ${t.kind} lab: only kind: vm labs are booted by the harness`);
  const progress = opts.progress ?? (() => undefined);
  const existing = readState(t.name);
  const choice = kernelChoiceOf(loaded, opts.kernel);
  if (existing) {
    const st = labStatus(t.name);
    const sameKernel = !opts.kernel || existing.kernel?.id.startsWith(typeof choice === 'string' ? choice : (choice.name ?? 'custom'));
    if (!st.stale && opts.reuse !== false && existing.topologySha256 === loaded.sha256 && sameKernel) {
      progress('lab', 'already up: reusing it');
      return attachFromState(loaded, existing);
    }
    progress('cleanup', st.stale ? 'cleaning a stale lab left by an earlier run' : 'replacing the running lab (topology or kernel changed)');
    await destroyLab(existing);
  } else if (await netnsExists(host, `rf-${t.name}`)) {
    progress('cleanup', 'removing a namespace left by an earlier run');
    await destroyFabric(host, `rf-${t.name}`, []);
  }

  const labId = labIdFor(t.name);
  const dir = labDir(t.name);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const switches = t.vm?.switches ?? ['a', 'b'];
  const state: LabState = {
    version: 1,
    lab: t.name,
    labId,
    phase: 'creating',
    topologyFile: loaded.file,
    topologySha256: loaded.sha256,
    netns: `rf-${t.name}`,
    dir,
    cpu: t.vm?.cpu ?? 'max',
    clientKeyFile: join(dir, 'client_ed25519'),
    createdAt: new Date().toISOString(),
    guests: [],
  };
  writeState(state);
  const connected = new Map<string, SshNode>();
  try {
    progress('kernel', 'preparing the guest kernel');
    const kernel: GuestKernel = await prepareKernel(choice, (m) => progress('kernel', m));
    if (needsSiw(t)) progress('kernel', await ensureSiw(kernel, (m) => progress('kernel', m)));
    state.kernel = kernel;
    progress('initramfs', `building the initramfs for ${kernel.version}`);
    state.initramfs = buildInitramfs(kernel);
    // RDMA_FAILOVER_BOOT=bzimage boots the bzImage anyway (bench:lab compares the two)
    const pvh = process.env.RDMA_FAILOVER_BOOT === 'bzimage' ? undefined : await pvhKernel(kernel.image, (m) => progress('kernel', `booting the bzImage (${m})`));
    if (pvh) state.bootImage = pvh;
    const client = await generateKeyPair(state.clientKeyFile, `rdma-failover lab ${t.name}`);

    const base = t.vm?.ssh_port_base;
    for (const [gi, n] of t.nodes.entries()) {
      const port = base !== undefined ? base + gi : await freePort();
      if (base !== undefined && !(await portFree(port))) {
        throw new LabError(`port ${port} (SSH forward for ${n.name}, vm.ssh_port_base + ${gi}) is in use on 127.0.0.1: free it or choose another vm.ssh_port_base`);
      }
      const gdir = join(dir, n.name);
      mkdirSync(gdir, { recursive: true, mode: 0o700 });
      const hostKey = await generateKeyPair(join(gdir, 'host_ed25519'), `${n.name}@rdma-failover`);
      const slaves = (n.bonds ?? []).flatMap((b) => b.slaves);
      const nics = slaves.map((s, si) => ({
        name: s.name,
        mac: macFor(labId, gi, si + 1),
        tap: `rf${labId}g${gi}n${si}`,
        switch: s.switch ?? switches[si % switches.length]!,
      }));
      const g: GuestState = {
        name: n.name,
        index: gi,
        sshPort: port,
        qmpSocket: join(gdir, 'qmp.sock'),
        consoleLog: join(gdir, 'console.log'),
        configDir: join(gdir, 'config'),
        hostKeyFingerprint: fingerprint(hostKey.blob),
        memoryMiB: n.memory_mib ?? t.vm?.memory_mib ?? 512,
        nics,
      };
      writeGuestConfig(g.configDir, {
        hostname: n.name,
        nics: [{ mac: macFor(labId, gi, 0), name: 'mgmt0' }, ...nics.map((x) => ({ mac: x.mac, name: x.name }))],
        hostKey,
        authorizedKey: client.public,
      });
      state.guests.push(g);
    }
    writeState(state);

    progress('network', `namespace ${state.netns}: switches ${switches.join(', ')}`);
    await createFabric(host, state.netns, switches);
    for (const g of state.guests) for (const nic of g.nics) await createTap(host, nic.tap);

    for (const g of state.guests) {
      progress(g.name, 'starting QEMU');
      g.pid = startQemu(state, g, join(dir, g.name, 'qemu.log'));
      writeState(state);
    }
    // QEMU answers QMP once its devices (and so its taps) are open: then plug the taps into switches.
    await Promise.all(
      state.guests.map(async (g) => {
        await waitQmp(state, g);
        for (const nic of g.nics) await plugTap(host, state.netns, nic);
      }),
    );
    const bootMs = (t.vm?.boot_timeout_s ?? 180) * 1000;
    // The connections that found the guests ready become the lab's own (a new one cost the first
    // command ~1 s on the guest: handshake, sshd's re-exec, the command agent's start).
    await Promise.all(
      state.guests.map(async (g) => {
        progress(g.name, 'booting');
        const t0 = now();
        const node = await waitSsh(state, g, bootMs);
        connected.set(g.name, node);
        const skew = await syncGuestClock(node);
        progress(g.name, `up in ${((now() - t0) / 1000).toFixed(1)} s (clock ${skew})`);
      }),
    );
    state.phase = 'up';
    state.upAt = new Date().toISOString();
    writeState(state);
    return new VmLab(loaded, state, connected);
  } catch (e) {
    await Promise.all([...connected.values()].map((n) => n.close().catch(() => undefined)));
    keepConsoles(state);
    // RDMA_FAILOVER_KEEP_FAILED_LAB=1 leaves a failed lab running for inspection (`lab down` removes it).
    if (process.env.RDMA_FAILOVER_KEEP_FAILED_LAB !== '1') await destroyLab(state).catch(() => undefined);
    throw e;
  }
}

/**
 * Guests boot with the RTC's whole seconds: step their clock to the controller's, so logs line up.
 * (Timelines never rely on this: they always map node clocks with a measured offset.) One probe
 * measures before and after. The step is done by one perl process between reading and setting the
 * clock (perl-base, already the command agent's interpreter; python3 took 0.37 s to start on the
 * guest): clock_gettime and clock_settime by their x86_64 numbers, the guests' only architecture.
 */
async function syncGuestClock(node: SshNode): Promise<string> {
  const probe = new ClockProbe(node);
  try {
    const before = await probe.measure(5);
    await node.run(['perl', '-e', STEP_CLOCK, '--', String(Math.round(before.offsetMs * 1e6))]);
    const after = await probe.measure(5);
    return `offset ${before.offsetMs.toFixed(0)} ms → ${after.offsetMs.toFixed(1)} ± ${after.boundMs.toFixed(1)} ms`;
  } finally {
    probe.close();
  }
}

/** Steps CLOCK_REALTIME back by argv[0] ns, in integer nanoseconds (x86_64: 228 clock_gettime, 227 clock_settime). */
const STEP_CLOCK =
  'use integer; my $b = "\\0" x 16; syscall(228, 0, $b) == 0 or die "clock_gettime: $!\\n"; ' +
  'my ($s, $n) = unpack("q2", $b); my $t = $s * 1000000000 + $n - $ARGV[0]; ' +
  'syscall(227, 0, pack("q2", $t / 1000000000, $t % 1000000000)) == 0 or die "clock_settime: $!\\n";';

/** Keeps console logs of a failed lab for post-mortem (the lab itself is removed). */
function keepConsoles(state: LabState): void {
  const dest = join(labsDir(), `${state.lab}.failed`);
  rmSync(dest, { recursive: true, force: true });
  for (const g of state.guests) {
    for (const f of [g.consoleLog, join(state.dir, g.name, 'qemu.log')]) {
      if (existsSync(f)) {
        mkdirSync(join(dest, g.name), { recursive: true });
        cpSync(f, join(dest, g.name, f.split('/').pop()!));
      }
    }
  }
}

async function waitQmp(state: LabState, g: GuestState): Promise<void> {
  const deadline = now() + 30_000;
  for (;;) {
    if (await guestGone(g.pid, state.labId, g.name)) {
      const log = join(state.dir, g.name, 'qemu.log');
      throw new LabError(`QEMU for ${g.name} exited at start:\n${existsSync(log) ? readFileSync(log, 'utf8').trim() : '(no log)'}`);
    }
    try {
      await qmp(g.qmpSocket, 'query-status', undefined, 2000);
      return;
    } catch {
      if (now() > deadline) throw new LabError(`QEMU for ${g.name} did not answer on its QMP socket within 30 s`);
      await sleep(100);
    }
  }
}

const MARK_WAIT_MS = 30_000;

/**
 * Waits until the guest answers SSH and says it is ready; returns that connection (the caller
 * closes it). The guest writes READY_MARK to its console when stage 2 is done: SSH is tried at once
 * when it appears. Before that an attempt costs up to its whole connect timeout (QEMU's user
 * networking accepts the TCP connection while the guest's network is not up yet, and the
 * handshake hangs), and lab up measured SSH answering 1.8 s after the mark on average. A console
 * that never shows the mark (another kernel's log level) gets attempts after MARK_WAIT_MS (a boot
 * takes 7–10 s here; a guest that never comes up fails later on its boot timeout).
 */
async function waitSsh(state: LabState, g: GuestState, timeoutMs: number, consoleFrom = 0): Promise<SshNode> {
  const deadline = now() + timeoutMs;
  const serial = new ConsoleWatch(g.consoleLog, consoleFrom, READY_MARK);
  const markDeadline = Math.min(deadline, now() + MARK_WAIT_MS);
  let last: string;
  const stopped = async () => {
    if (await guestGone(g.pid, state.labId, g.name)) {
      throw new LabError(`guest ${g.name} stopped while booting. Console tail:\n${consoleTail(g.consoleLog)}`);
    }
  };
  // Until the mark (or MARK_WAIT_MS without it), only the console is read.
  let marked = serial.seen();
  for (let i = 1; !marked && now() < markDeadline; i++) {
    if (i % 10 === 0) await stopped();
    await sleep(100);
    marked = serial.seen();
  }
  for (;;) {
    await stopped();
    // Without the mark, attempts are short (the handshake hangs until the guest's network is up).
    const probe = guestNode(state, g, marked ? {} : { connectTimeoutMs: 4000 });
    let kept = false;
    try {
      // sshd answers before stage 2 has finished: the guest is ready when it says so.
      if ((await probe.exec(['test', '-e', '/run/rf-ready'], { timeoutMs: 8000 })).exitCode === 0) {
        // A short connect timeout is for boot only: the node kept for the lab gets the usual one.
        kept = marked;
        return marked ? probe : guestNode(state, g);
      }
      last = 'guest not ready yet (/run/rf-ready missing)';
    } catch (e) {
      last = (e as Error).message;
      if (e instanceof HostKeyError) throw e;
    } finally {
      if (!kept) await probe.close();
    }
    if (now() > deadline) {
      throw new LabError(`guest ${g.name} did not answer SSH within ${Math.round(timeoutMs / 1000)} s (last: ${last}). Console tail:\n${consoleTail(g.consoleLog)}`);
    }
    await sleep(300);
  }
}

export class VmLab extends BaseLab {
  readonly kind = 'vm' as const;
  readonly state: LabState;
  readonly carrier: CarrierControl;
  readonly switchPorts: SwitchPortControl;
  readonly machines: MachineControl;

  /** `connected`: guests' nodes already connected (lab up's), used instead of new ones. */
  constructor(loaded: LoadedTopology, state: LabState, connected: ReadonlyMap<string, SshNode> = new Map()) {
    const nodes = new Map<string, Node>(state.guests.map((g) => [g.name, connected.get(g.name) ?? guestNode(state, g)]));
    super(loaded, nodes);
    this.state = state;
    this.carrier = {
      method: 'QEMU set_link (virtio-net carrier off)',
      cut: (node, ifname) => this.setLinks(node, [ifname], false),
      restore: (node, ifname) => this.setLinks(node, [ifname], true),
      cutTogether: (node, ifnames) => this.setLinks(node, ifnames, false),
    };
    this.switchPorts = {
      down: (node, ifname) => setSwitchPort(host, state.netns, this.nic(node, ifname).tap, false),
      up: (node, ifname) => setSwitchPort(host, state.netns, this.nic(node, ifname).tap, true),
    };
    this.machines = {
      pause: async (node) => void (await qmp(this.guest(node).qmpSocket, 'stop')),
      resume: async (node) => void (await qmp(this.guest(node).qmpSocket, 'cont')),
      reboot: (node) => this.reboot(node),
      console: (node, maxBytes) => Promise.resolve(consoleTail(this.guest(node).consoleLog, maxBytes ?? 200_000)),
      consoleMark: (node) => (existsSync(this.guest(node).consoleLog) ? statSync(this.guest(node).consoleLog).size : 0),
      consoleSince: (node, mark, maxBytes = 400_000) => consoleSince(this.guest(node).consoleLog, mark, maxBytes),
    };
  }

  guest(name: string): GuestState {
    const g = this.state.guests.find((x) => x.name === name);
    if (!g) throw new Error(`no guest ${name} in lab ${this.state.lab}`);
    return g;
  }

  nic(node: string, ifname: string): GuestState['nics'][number] {
    const n = this.guest(node).nics.find((x) => x.name === ifname);
    if (!n) throw new Error(`guest ${node} has no NIC ${ifname}`);
    return n;
  }

  /** One QMP command per link, all on one connection: several links change at one instant. */
  private async setLinks(node: string, ifnames: readonly string[], up: boolean): Promise<void> {
    for (const i of ifnames) this.nic(node, i);
    await qmpBatch(this.guest(node).qmpSocket, ifnames.map((i) => ({ command: 'set_link', args: { name: `nic-${i}`, up } })));
  }

  private async reboot(node: string): Promise<void> {
    const g = this.guest(node);
    // Links cut by a previous test stay cut across a reset: restore them first.
    for (const nic of g.nics) {
      await qmp(g.qmpSocket, 'set_link', { name: `nic-${nic.name}`, up: true }).catch(() => undefined);
      await setSwitchPort(host, this.state.netns, nic.tap, true).catch(() => undefined);
    }
    await qmp(g.qmpSocket, 'cont').catch(() => undefined);
    // Only a mark written after the reset says the new boot is ready (no pause for the old sshd).
    const consoleFrom = this.machines.consoleMark(node);
    await qmp(g.qmpSocket, 'system_reset');
    (this.node(node) as SshNode).disconnect();
    const fresh = await waitSsh(this.state, g, (this.loaded.topology.vm?.boot_timeout_s ?? 180) * 1000, consoleFrom);
    try {
      // A rebooted guest starts from the RTC's whole seconds again (1.4 s behind in one run): its
      // logs line up with the others' only when it is stepped, as at lab up.
      await syncGuestClock(fresh);
    } finally {
      await fresh.close();
    }
  }
}

function attachFromState(loaded: LoadedTopology, state: LabState): VmLab {
  return new VmLab(loaded, state);
}

/** A Lab for a VM topology whose lab is already up (`lab up` was run). */
export function attachVmLab(loaded: LoadedTopology): VmLab {
  const state = readState(loaded.topology.name);
  if (!state || state.phase !== 'up') {
    throw new LabError(`the VM lab "${loaded.topology.name}" is not up: run \`rdma-failover lab up ${loaded.file}\` first`);
  }
  const st = labStatus(loaded.topology.name);
  if (st.stale) throw new LabError(`the VM lab "${loaded.topology.name}" is stale (a guest is not running): run \`rdma-failover lab up ${loaded.file}\` to recreate it`);
  return attachFromState(loaded, state);
}
