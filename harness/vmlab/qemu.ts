// QEMU command lines and process handling for lab guests. Software emulation (TCG): KVM does not
// work on this machine's kernel. Every guest carries a marker in its -name so the harness only
// ever signals its own processes.
import { spawn } from 'node:child_process';
import { openSync, closeSync, mkdirSync, readFileSync } from 'node:fs';
import type { GuestState, LabState } from './state.ts';
import { sleep } from '../clock.ts';

export function processMarker(labId: string, guest: string): string {
  return `rf-${labId}-${guest}`;
}

/**
 * The host's root as the guests may see it. Sharing "/" itself would let a guest's root read
 * everything the controller has — its SSH keys (the ones that reach a real lab), /etc/shadow, the
 * lab's own client key, and through the host's /proc (multidevs=remap crosses mounts) other
 * processes' environments. So QEMU starts in a mount namespace of its own where the 9p root is a
 * view: /usr and /etc bound in, the merged-/usr links, empty mount points for the rest, and in
 * /etc the secrets masked. The guest's user space is still exactly what setup.sh installed.
 */
export const ROOT_VIEW = `set -eu
view=$1; shift
mount -t tmpfs -o mode=0755,size=1m rf-root-view "$view"
for d in usr etc; do mkdir "$view/$d"; mount --rbind "/$d" "$view/$d"; done
for l in bin sbin lib lib32 lib64 libx32; do
  if [ -L "/$l" ]; then ln -s "$(readlink "/$l")" "$view/$l"; elif [ -d "/$l" ]; then mkdir "$view/$l"; mount --rbind "/$l" "$view/$l"; fi
done
for d in proc sys dev run tmp root home mnt media srv opt boot var/lib var/log var/tmp var/cache var/spool; do mkdir -p "$view/$d"; done
ln -s /run "$view/var/run"; ln -s /run/lock "$view/var/lock"
: > "$view/.masked"
# Password hashes out: every field becomes "*" (no password, not locked — sshd refuses a root whose
# shadow entry is missing or locked; the guests log in with a key only).
for f in shadow shadow- gshadow gshadow-; do
  [ -f "/etc/$f" ] || continue
  sed -E 's/^([^:]*):[^:]*:/\\1:*:/' "/etc/$f" > "$view/.$f"; chmod 0640 "$view/.$f"
  mount --bind "$view/.$f" "$view/etc/$f"
done
for f in "$view"/etc/security/opasswd "$view"/etc/ssh/ssh_host_*_key "$view"/etc/krb5.keytab "$view"/etc/ppp/*-secrets; do
  [ -f "$f" ] && mount --bind "$view/.masked" "$f"
done
for d in "$view"/etc/ssl/private "$view"/etc/NetworkManager/system-connections "$view"/etc/wpa_supplicant "$view"/etc/wireguard "$view"/etc/openvpn; do
  [ -d "$d" ] && mount -t tmpfs -o mode=0700,size=4k rf-masked "$d"
done
exec "$@"`;

/** Path of a guest's root view (a mount point on the host, used only inside QEMU's namespace). */
export function rootViewDir(lab: LabState, g: GuestState): string {
  return `${lab.dir}/${g.name}/root-view`;
}

/**
 * The data NICs' model (RDMA_FAILOVER_VM_NIC): virtio-net by default. QEMU 7.2's virtio-net, its
 * carrier toggled under RDMA traffic, sometimes stops taking packets from its transmit ring for good
 * (NETDEV WATCHDOG until a reset: the nic-stall health finding, the node rebooted, the test retried
 * once). e1000 does not stall, but reports link up only from its 2 s watchdog, which a flap shorter
 * than that never sees: kept as an option, not the default.
 */
export function dataNicModel(): 'virtio-net-pci' | 'e1000' {
  const m = process.env.RDMA_FAILOVER_VM_NIC ?? 'virtio';
  if (m === 'virtio') return 'virtio-net-pci';
  if (m === 'e1000') return 'e1000';
  throw new Error(`RDMA_FAILOVER_VM_NIC=${m}: virtio or e1000`);
}

export function qemuArgv(lab: LabState, g: GuestState): string[] {
  if (!lab.kernel || !lab.initramfs) throw new Error('kernel and initramfs must be prepared first');
  const fs9p = (id: string, path: string, tag: string, extra = '') => [
    '-fsdev', `local,id=${id},path=${path},readonly=on,security_model=none${extra}`,
    '-device', `virtio-9p-pci,fsdev=${id},mount_tag=${tag}`,
  ];
  const mgmtMac = macFor(lab.labId, g.index, 0);
  return [
    'qemu-system-x86_64',
    '-name', `${processMarker(lab.labId, g.name)},process=${processMarker(lab.labId, g.name)}`,
    '-accel', 'tcg,thread=multi,tb-size=128',
    '-cpu', lab.cpu,
    '-m', String(g.memoryMiB),
    '-smp', '1',
    '-nodefaults', '-no-user-config', '-display', 'none', '-vga', 'none',
    '-kernel', lab.bootImage ?? lab.kernel.image,
    '-initrd', lab.initramfs,
    // RDMA_FAILOVER_GUEST_APPEND adds kernel parameters (debugging; the failure-path tests use it).
    '-append', ['console=ttyS0 quiet panic=0 net.ifnames=0', process.env.RDMA_FAILOVER_GUEST_APPEND ?? ''].join(' ').trim(),
    '-chardev', `file,id=console,path=${g.consoleLog}`,
    '-serial', 'chardev:console',
    ...fs9p('rfroot', rootViewDir(lab, g), 'rf-root', ',multidevs=remap'),
    ...fs9p('rfmods', lab.kernel.modulesRoot, 'rf-modules'),
    ...fs9p('rfconf', g.configDir, 'rf-config'),
    // Management NIC: user-mode networking, reachable only through the SSH forward on 127.0.0.1.
    '-netdev', `user,id=mgmt,restrict=on,hostfwd=tcp:127.0.0.1:${g.sshPort}-10.0.2.15:22`,
    '-device', `virtio-net-pci,netdev=mgmt,mac=${mgmtMac},id=nic-mgmt0`,
    ...g.nics.flatMap((n) => [
      '-netdev', `tap,id=net-${n.name},ifname=${n.tap},script=no,downscript=no`,
      '-device', `${dataNicModel()},netdev=net-${n.name},mac=${n.mac},id=nic-${n.name}`,
    ]),
    '-device', 'virtio-rng-pci',
    '-qmp', `unix:${g.qmpSocket},server=on,wait=off`,
  ];
}

/** Locally administered, unicast, per lab/guest/NIC: 52:54:00 is QEMU's prefix. */
export function macFor(labId: string, guest: number, nic: number): string {
  const h = (n: number) => n.toString(16).padStart(2, '0');
  return `52:54:${labId.slice(0, 2)}:${labId.slice(2, 4)}:${h(guest)}:${h(nic)}`;
}

/** Starts QEMU detached (it outlives this process) in a mount namespace of its own that holds the
 *  guest's root view, output to a log file. Returns its PID (the same process execs into QEMU, and
 *  carries the guest's marker from the start, so isOurGuest knows it at every stage). */
export function startQemu(lab: LabState, g: GuestState, logFile: string): number {
  const view = rootViewDir(lab, g);
  mkdirSync(view, { recursive: true, mode: 0o755 });
  const argv = ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', ROOT_VIEW, `${processMarker(lab.labId, g.name)},root-view`, view, ...qemuArgv(lab, g)];
  const fd = openSync(logFile, 'a');
  try {
    const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', fd, fd] });
    if (!child.pid) throw new Error(`cannot start ${argv[0]}`);
    child.unref();
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

/**
 * Has the guest's process gone? One reading is not enough while it starts: the process execs
 * twice (unshare → sh → QEMU), and while execve swaps its memory /proc/PID/cmdline reads empty —
 * a `lab up` once failed in 4 s "exited at start" with no console log because it read that moment.
 * So "gone" takes two readings 250 ms apart (never used to decide whom to kill).
 */
export async function guestGone(pid: number | undefined, labId: string, guest: string): Promise<boolean> {
  if (isOurGuest(pid, labId, guest)) return false;
  await sleep(250);
  return !isOurGuest(pid, labId, guest);
}

/** Is pid one of this lab's guests (and not some other process that reused the PID)? */
export function isOurGuest(pid: number | undefined, labId: string, guest: string): boolean {
  if (!pid) return false;
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return false;
    return cmdline.split('\0').some((a) => a.startsWith(processMarker(labId, guest) + ','));
  } catch {
    return false;
  }
}
