// What a guest boots with: an initramfs the project builds (busybox + the few modules needed to
// mount the root), the host's root shared read-only over 9p under a tmpfs overlay, and a per-guest
// config share (hostname, NIC names, SSH keys, init scripts). Topology values reach the guest only
// as data files that the scripts read; they are never pasted into shell code.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipCpio, type CpioEntry } from './cpio.ts';
import { loadOrder, parseBuiltin, parseModulesDep } from './modules.ts';
import type { GuestKernel } from './kernel.ts';
import { kernelsDir } from './paths.ts';
import { LocalNode } from '../node/local.ts';

const BUSYBOX = '/bin/busybox';

/** Modules the initramfs needs to reach the 9p root and bring up NICs. */
const INITRAMFS_MODULES = ['virtio_pci', 'virtio_net', 'e1000', '9pnet_virtio', '9p', 'overlay'];

/**
 * Module parameters for the initramfs (busybox insmod does not read the kernel command line).
 * virtio_net napi_tx=0: with TX NAPI (the default) virtio-net frees a sent skb only when it next
 * cleans its ring — on a later send, a TX interrupt (delayed to 3/4 of the ring), or RX NAPI — and
 * until then the skb's destructor has not run. rxe holds a reference on its QP for every skb it
 * sent until that destructor (rxe_net.c rxe_send/rxe_skb_tx_dtor), throttles a QP at 64 unfreed skbs
 * (rxe_req.c), and rxe_destroy_qp waits up to 50 s for the last one (rxe_pool.c __rxe_cleanup).
 * Packets left in the ring of a slave that just lost its carrier are never cleaned, so RDS's
 * shutdown hung in rxe_destroy_qp ("blocked for more than 20 seconds", then the WARN at
 * rxe_pool.c:255). napi_tx=0 orphans the skb at send (start_xmit: skb_orphan), as a NIC completing
 * its sends promptly would: the reference is dropped at once.
 */
const INITRAMFS_MODULE_PARAMS: Record<string, string> = { virtio_net: 'napi_tx=0' };

const INIT = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
fail() {
  echo "rf-init: FAILED: $*" > /dev/console
  sleep 1
  poweroff -f
}
while read -r m params; do
  insmod "/modules/$m.ko" $params || echo "rf-init: insmod $m failed" > /dev/console
done < /etc/rf-modules
o=trans=virtio,version=9p2000.L,msize=512000
mkdir -p /lower /rw /newroot
mount -t 9p -o "$o,ro,cache=loose" rf-root /lower || fail "mounting the host root (9p tag rf-root)"
mount -t tmpfs -o size=70% tmpfs /rw || fail "tmpfs"
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot || fail "overlay root"
mkdir -p /newroot/lib/modules
mount -t 9p -o "$o,ro" rf-modules /newroot/lib/modules || fail "mounting the guest kernel's modules (9p tag rf-modules)"
mount -t tmpfs -o mode=755 tmpfs /newroot/run
mkdir -p /newroot/run/rf
mount -t 9p -o "$o,ro" rf-config /newroot/run/rf || fail "mounting the guest config (9p tag rf-config)"
cp /newroot/run/rf/inittab /newroot/etc/inittab || fail "inittab"
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /bin/busybox init
`;

/**
 * Stage 2 runs as busybox init's sysinit in the real root. It reads its settings from /run/rf.
 * Its commands are busybox applets (symlinks in /run/rf-bb, first on PATH), except kmod's
 * modprobe: under emulation each exec of a dynamically linked tool from the 9p root cost 30–70 ms
 * (the dynamic loader's work), the static busybox 12–19 ms, and stage 2 runs about forty of them
 * before sshd may start.
 */
export const STAGE2 = `#!/bin/busybox sh
# rdma-failover guest init (stage 2). Settings are data files in /run/rf (never shell code).
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mkdir -p /run/rf-bb && /bin/busybox --install -s /run/rf-bb
export PATH=/run/rf-bb:$PATH
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
# What udev would add to a devtmpfs: bash process substitution and many scripts need /dev/fd.
ln -sfn /proc/self/fd /dev/fd; ln -sf /proc/self/fd/0 /dev/stdin; ln -sf /proc/self/fd/1 /dev/stdout; ln -sf /proc/self/fd/2 /dev/stderr
# The host's root is shared read-only: hide what must be private or per-guest.
for d in /tmp /var/tmp /root /home /var/log /var/lib/nfs /var/lib/iscsi /etc/iscsi/nodes /etc/iscsi/send_targets /mnt /media; do
  mkdir -p "$d" 2>/dev/null; mount -t tmpfs -o mode=0755 tmpfs "$d"
done
chmod 1777 /tmp /var/tmp; chmod 700 /root
mkdir -p /var/lib/nfs/rpc_pipefs /var/lib/nfs/v4recovery /var/log/rf /run/lock
chmod 1777 /run/lock
touch /var/lib/nfs/etab /var/lib/nfs/rmtab
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
/sbin/modprobe configfs && mount -t configfs configfs /sys/kernel/config
read -r h < /run/rf/hostname
hostname "$h"; echo "$h" > /etc/hostname
printf '127.0.0.1 localhost\\n127.0.1.1 %s\\n' "$h" > /etc/hosts
: > /etc/machine-id; cat /proc/sys/kernel/random/uuid | tr -d - > /etc/machine-id
printf 'InitiatorName=iqn.2024-01.lab.test:%s\\n' "$h" > /etc/iscsi/initiatorname.iscsi
# Kernel log: warnings to the console (the harness keeps it as crash evidence); hung tasks early.
echo 5 > /proc/sys/kernel/printk
echo 20 > /proc/sys/kernel/hung_task_timeout_secs 2>/dev/null
echo -1 > /proc/sys/kernel/hung_task_warnings 2>/dev/null
/sbin/modprobe virtio_rng 2>/dev/null
ip link set lo up
# NICs: rename by MAC (first to temporary names, so no rename collides with a kernel name).
i=0
for d in /sys/class/net/*; do n=\${d##*/}; [ "$n" = lo ] && continue; ip link set "$n" name "rftmp$i"; i=$((i+1)); done
while read -r mac name; do
  for d in /sys/class/net/rftmp*; do
    [ -e "$d" ] || continue
    [ "$(cat "$d/address")" = "$mac" ] && ip link set "\${d##*/}" name "$name"
  done
done < /run/rf/nics
ip addr add 10.0.2.15/24 dev mgmt0
ip link set mgmt0 up
mkdir -p /run/sshd /etc/ssh
cp /run/rf/ssh_host_ed25519_key /etc/ssh/rf_host_ed25519_key && chmod 600 /etc/ssh/rf_host_ed25519_key
cp /run/rf/authorized_keys /etc/ssh/rf_authorized_keys && chmod 644 /etc/ssh/rf_authorized_keys
# The rest runs while init starts sshd; the harness waits for /run/rf-ready before using the guest.
(
  # Warm the module cache for the fabric (bonding without its automatic bond0): the fabric code
  # still loads whatever is missing, on VM and real labs alike.
  /sbin/modprobe bonding max_bonds=0
  /sbin/modprobe -a ib_uverbs rdma_ucm rdma_rxe
  # Ready first, then the mark: the harness tries SSH when the console shows the mark.
  touch /run/rf-ready
  echo "rf-guest: stage 2 done" > /dev/kmsg
) > /dev/null 2>&1 &
`;

const INITTAB = `::sysinit:/bin/busybox sh /run/rf/stage2.sh
::respawn:/usr/sbin/sshd -D -e -f /run/rf/sshd_config
::ctrlaltdel:/bin/busybox reboot -f
::shutdown:/bin/busybox sync
`;

const SSHD_CONFIG = `# rdma-failover guest sshd: key-only root login on the management NIC.
Port 22
ListenAddress 10.0.2.15
HostKey /etc/ssh/rf_host_ed25519_key
PermitRootLogin prohibit-password
AuthorizedKeysFile /etc/ssh/rf_authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxSessions 64
MaxStartups 64
UseDNS no
PrintMotd no
LogLevel ERROR
Subsystem sftp internal-sftp
`;

/** Builds (or reuses) the initramfs for a kernel. Cached by a hash of everything that goes in. */
export function buildInitramfs(kernel: GuestKernel): string {
  const modDir = join(kernel.modulesRoot, kernel.version);
  const deps = parseModulesDep(readFileSync(join(modDir, 'modules.dep'), 'utf8'));
  const builtinFile = join(modDir, 'modules.builtin');
  const builtin = existsSync(builtinFile) ? parseBuiltin(readFileSync(builtinFile, 'utf8')) : new Set<string>();
  const order = loadOrder(deps, INITRAMFS_MODULES, builtin);
  const busybox = readFileSync(BUSYBOX);
  const mods = order.map((m) => ({ name: m.name, data: moduleBytes(join(modDir, m.path)) }));
  const hash = createHash('sha256').update(INIT).update(JSON.stringify(INITRAMFS_MODULE_PARAMS)).update(busybox);
  for (const m of mods) hash.update(m.name).update(m.data);
  const digest = hash.digest('hex').slice(0, 16);
  const out = join(kernelsDir(), 'initramfs', `${kernel.version}-${digest}.cpio.gz`);
  if (existsSync(out)) return out;
  const entries: CpioEntry[] = [
    ...['bin', 'dev', 'etc', 'proc', 'sys', 'modules', 'lower', 'rw', 'newroot'].map((d) => ({ path: d, type: 'dir' as const })),
    { path: 'bin/busybox', type: 'file', mode: 0o755, data: busybox },
    { path: 'init', type: 'file', mode: 0o755, data: Buffer.from(INIT) },
    { path: 'etc/rf-modules', type: 'file', data: Buffer.from(mods.map((m) => `${m.name} ${INITRAMFS_MODULE_PARAMS[m.name] ?? ''}`.trim()).join('\n') + '\n') },
    ...mods.map((m) => ({ path: `modules/${m.name}.ko`, type: 'file' as const, data: m.data })),
  ];
  mkdirSync(join(kernelsDir(), 'initramfs'), { recursive: true });
  writeFileSync(out, gzipCpio(entries));
  return out;
}

/** busybox insmod cannot read compressed modules: decompress .ko.xz/.ko.zst for the initramfs. */
function moduleBytes(path: string): Buffer {
  if (path.endsWith('.ko')) return readFileSync(path);
  const tool = path.endsWith('.xz') ? ['xz', '-dc'] : path.endsWith('.zst') ? ['zstd', '-dc'] : path.endsWith('.gz') ? ['gzip', '-dc'] : undefined;
  if (!tool) throw new Error(`unknown module compression: ${path}`);
  return decompressSync(tool, path);
}

function decompressSync(tool: string[], path: string): Buffer {
  // Synchronous is fine: a handful of small modules, once per kernel.
  return execFileSync(tool[0]!, [...tool.slice(1), path], { maxBuffer: 64 * 1024 * 1024 });
}

export interface GuestConfig {
  hostname: string;
  /** mac → guest interface name (mgmt0 first) */
  nics: { mac: string; name: string }[];
  hostKey: { private: string; public: string };
  authorizedKey: string;
}

/** Writes the guest's config share. */
export function writeGuestConfig(dir: string, c: GuestConfig): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const w = (f: string, s: string, mode = 0o644) => {
    writeFileSync(join(dir, f), s);
    chmodSync(join(dir, f), mode);
  };
  w('hostname', `${c.hostname}\n`);
  w('nics', c.nics.map((n) => `${n.mac} ${n.name}`).join('\n') + '\n');
  w('stage2.sh', STAGE2, 0o755);
  w('inittab', INITTAB);
  w('sshd_config', SSHD_CONFIG);
  w('ssh_host_ed25519_key', c.hostKey.private, 0o600);
  w('ssh_host_ed25519_key.pub', c.hostKey.public);
  w('authorized_keys', c.authorizedKey);
}

const keygenHost = new LocalNode('controller');

/** An ed25519 key pair from ssh-keygen (OpenSSH formats). */
export async function generateKeyPair(file: string, comment: string): Promise<{ private: string; public: string; blob: Buffer }> {
  await keygenHost.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file]);
  const pub = readFileSync(`${file}.pub`, 'utf8');
  return { private: readFileSync(file, 'utf8'), public: pub, blob: Buffer.from(pub.split(' ')[1] ?? '', 'base64') };
}
