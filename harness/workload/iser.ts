// iSER (UL-ISER-01): an LIO target (through its configfs tree: the same code on every lab, and it
// works where targetcli cannot run) with a file backstore on tmpfs and an iSER-enabled portal;
// open-iscsi with an `iser` iface on the initiator; fio with verification on the disk.
// Everything it creates carries its own name — the IQN, an HBA index nobody uses, the iface, the
// node record — and discovery stores nothing, so a user's targets and records are never touched.
import { waitFor, within } from '../clock.ts';
import type { Lab } from '../lab/lab.ts';
import type { ConnectionRef } from '../timeline/timeline.ts';
import { markKernelLog, scsiErrorsSince } from '../health/health.ts';
import { BlockStorageWorkload, type BlockStorageOptions } from './block-storage.ts';

export interface IserOptions extends BlockStorageOptions {
  target: string;
  initiator: string;
  /** seconds iSCSI queues I/O while the session is down (above the test window) */
  replacementTimeoutS?: number;
  iqn?: string;
}

const CFG = '/sys/kernel/config/target';
const DIR = '/run/rf-iser';
const IFACE = 'rf_iser';

/** Target: fileio backstore in the HBA given, iSCSI target + TPG + LUN, portal with iSER, demo-mode ACLs. */
const TARGET_UP = `set -e
iqn=$1; ip=$2; size=$3; dir=$4; hba=$5; cfg=${CFG}
[ ! -e "$cfg/iscsi/$iqn" ] || { echo "an iSCSI target $iqn exists already" >&2; exit 1; }
mkdir -p "$dir"
[ -e "$dir/disk.img" ] || truncate -s "$size" "$dir/disk.img"
mkdir -p "$cfg/core/$hba/rf_disk"
echo "fd_dev_name=$dir/disk.img,fd_dev_size=$size" > "$cfg/core/$hba/rf_disk/control"
echo 1 > "$cfg/core/$hba/rf_disk/enable"
mkdir -p "$cfg/iscsi/$iqn/tpgt_1/lun/lun_0"
ln -s "$cfg/core/$hba/rf_disk" "$cfg/iscsi/$iqn/tpgt_1/lun/lun_0/rf_disk"
mkdir -p "$cfg/iscsi/$iqn/tpgt_1/np/$ip:3260"
echo 1 > "$cfg/iscsi/$iqn/tpgt_1/np/$ip:3260/iser"
a=$cfg/iscsi/$iqn/tpgt_1/attrib
echo 0 > "$a/authentication"; echo 1 > "$a/generate_node_acls"; echo 0 > "$a/demo_mode_write_protect"; echo 1 > "$a/cache_dynamic_acls"
echo 1 > "$cfg/iscsi/$iqn/tpgt_1/enable"`;

/** Removes exactly what TARGET_UP created (each step may already be gone). */
const TARGET_DOWN = `iqn=$1; ip=$2; dir=$3; hba=$4; cfg=${CFG}
t=$cfg/iscsi/$iqn/tpgt_1
[ -e "$t/enable" ] && echo 0 > "$t/enable"
rm -f "$t/lun/lun_0/rf_disk"
for d in "$t/lun/lun_0" "$t/np/$ip:3260" "$t" "$cfg/iscsi/$iqn" "$cfg/core/$hba/rf_disk" "$cfg/core/$hba"; do [ ! -e "$d" ] || rmdir "$d"; done
rm -rf "$dir"
[ ! -e "$cfg/iscsi/$iqn" ] && [ ! -e "$cfg/core/$hba" ]`;

/** rmdir of the fabric directory the workload made; left (not an error) once someone else's target lives in it. */
const RM_FABRIC_DIR = '[ ! -e "$1" ] || rmdir "$1" 2>/dev/null || [ -n "$(ls -A "$1" | grep -vx discovery_auth)" ]';

export class IserWorkload extends BlockStorageWorkload {
  readonly name = 'iser';
  readonly ulp = 'iser' as const;
  protected readonly client: string;
  private readonly o: Required<Omit<IserOptions, keyof BlockStorageOptions>>;
  private readonly mark = `iser-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

  constructor(lab: Lab, o: IserOptions) {
    super(lab, 'iser', o);
    this.o = { replacementTimeoutS: 120, iqn: 'iqn.2024-01.lab.test:rf-iser', ...o };
    this.client = o.initiator;
  }

  connection(): ConnectionRef {
    return {
      ulp: 'iser',
      label: `${this.o.initiator} → ${this.o.target} (iSER, ${this.o.iqn}, fio verify on ${this.dataPath || 'the disk'})`,
      nodes: [this.o.initiator, this.o.target],
      ips: [this.ip(this.o.initiator), this.ip(this.o.target)],
      workload: this.name,
      kmsgDisconnect: ['detected conn error', 'iser: .*(disconnect|error)', 'isert: .*(disconnect|error)'],
      kmsgEstablished: [],
    };
  }

  private get portal(): string {
    return `${this.ip(this.o.target)}:3260`;
  }

  private iscsiadmNode(): string[] {
    return ['iscsiadm', '-m', 'node', '-T', this.o.iqn, '-p', this.portal, '-I', IFACE];
  }

  protected async bringUp(): Promise<string> {
    const t = this.lab.node(this.o.target);
    const i = this.lab.node(this.o.initiator);
    await markKernelLog(i, this.mark); // SCSI errors are counted from here on
    // The target and the initiator's own preparation (modules, iscsid, iface) at once: nothing on
    // one side waits for the other until discovery. Each side keeps its order (and its undo order).
    await this.bothSides(
      (async () => {
        await this.modules(t, ['target_core_mod', 'target_core_file', 'iscsi_target_mod', 'ib_isert']);
        // LIO's iscsi fabric directory pins iscsi_target_mod while it exists (configfs holds the module
        // of every item it made); made here, it is removed before the modules are unloaded (measured:
        // without it iscsi_target_mod kept 1 reference to the end of the run).
        if ((await t.exec(['test', '-d', `${CFG}/iscsi`])).exitCode !== 0) {
          await this.undo.change({ node: t.name, what: 'remove the iscsi fabric directory', kind: 'argv', argv: ['sh', '-c', RM_FABRIC_DIR, 'rm-fabric', `${CFG}/iscsi`] }, () => t.run(['mkdir', `${CFG}/iscsi`]));
        }
        const hba = await this.freeHba(t, 'fileio');
        const ip = this.ip(this.o.target);
        await this.undo.change({ node: t.name, what: `remove the iSER target ${this.o.iqn} and its backstore ${hba}/rf_disk`, kind: 'argv', argv: ['sh', '-c', TARGET_DOWN, 'iser-target-down', this.o.iqn, ip, DIR, hba] }, () =>
          t.run(['sh', '-c', TARGET_UP, 'iser-target-up', this.o.iqn, ip, String((this.size.sizeMiB + 8) * 2 ** 20), DIR, hba], { timeoutMs: 60_000 }),
        );
      })(),
      (async () => {
        // sd_mod: udev would load it for the new SCSI disk; not every lab has udev (the VM lab does not).
        await this.modules(i, ['ib_iser', 'sd_mod']);
        // open-iscsi's lock directory (systemd-tmpfiles makes it where it runs)
        if ((await i.exec(['test', '-d', '/run/lock/iscsi'])).exitCode !== 0) {
          await this.undo.change({ node: i.name, what: 'remove /run/lock/iscsi', kind: 'argv', argv: ['rm', '-rf', '/run/lock/iscsi'] }, () => i.run(['mkdir', '-p', '/run/lock/iscsi']));
        }
        await this.daemon(i, 'iscsid', ['iscsid', '-f']);
        await this.undo.change({ node: i.name, what: `delete the iscsiadm iface ${IFACE}`, kind: 'argv', argv: ['sh', '-c', 'iscsiadm -m iface -I "$1" -o delete >/dev/null 2>&1; true', 'rm-iface', IFACE], persists: true }, async () => {
          await i.run(['iscsiadm', '-m', 'iface', '-I', IFACE, '-o', 'new']);
          await i.run(['iscsiadm', '-m', 'iface', '-I', IFACE, '-o', 'update', '-n', 'iface.transport_name', '-v', 'iser']);
        });
      })(),
    );
    // Discovery proves the portal answers over iSER; nonpersistent: no records of other targets.
    await waitFor(
      'iSCSI discovery',
      async (left) => {
        const r = await i.exec(['iscsiadm', '-m', 'discovery', '-t', 'st', '-p', this.portal, '-I', IFACE, '-o', 'nonpersistent'], { timeoutMs: within(left, 30_000) });
        return r.exitCode === 0 && r.stdout.includes(this.o.iqn) ? true : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 1000 },
    );
    const node = this.iscsiadmNode();
    await this.undo.change({ node: i.name, what: `log out of ${this.o.iqn} and delete its node record`, kind: 'argv', argv: ['sh', '-c', '"$@" --logout >/dev/null 2>&1; "$@" -o delete >/dev/null 2>&1; true', 'logout', ...node], persists: true }, async () => {
      await i.run([...node, '-o', 'new']);
      await i.run([...node, '-o', 'update', '-n', 'node.session.timeo.replacement_timeout', '-v', String(this.o.replacementTimeoutS)]);
      await i.run([...node, '--login'], { timeoutMs: 60_000 });
    });
    // Prove the session really uses iSER, and find its disk.
    const session = await waitFor(
      'the iSER session and its disk',
      async () => {
        const r = await i.exec(['iscsiadm', '-m', 'session', '-P', '3'], { timeoutMs: 20_000 });
        const mine = r.stdout.split(/\n(?=Target: )/).find((b) => b.startsWith(`Target: ${this.o.iqn}`)) ?? '';
        const dev = /Attached scsi disk (\w+)\s+State: running/.exec(mine)?.[1];
        return dev ? { dev, text: mine } : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 1000 },
    );
    if (!/Iface Transport:\s*iser/.test(session.text)) throw new Error(`the iSCSI session does not use iser:\n${session.text}`);
    return `/dev/${session.dev}`;
  }

  /** TEST HOOK: overwrite part of the backing file on the target behind the initiator's back. */
  async corruptBackstore(offsetMiB = 4, lengthKiB = 256): Promise<void> {
    await this.lab.node(this.o.target).run(['dd', 'if=/dev/urandom', `of=${DIR}/disk.img`, 'bs=1k', `seek=${offsetMiB * 1024}`, `count=${lengthKiB}`, 'conv=notrunc', 'status=none']);
  }

  /** TEST HOOK: the target goes away (TPG disabled, portal removed): the initiator can never log in. */
  async removeTarget(): Promise<void> {
    await this.lab.node(this.o.target).run(['sh', '-c', 't=/sys/kernel/config/target/iscsi/$1/tpgt_1; echo 0 > "$t/enable"; rmdir "$t/np/$2:3260"', 'rm-target', this.o.iqn, this.ip(this.o.target)]);
  }

  async sessionState(): Promise<string> {
    const r = await this.lab.node(this.o.initiator).exec(['iscsiadm', '-m', 'session', '-P', '1'], { timeoutMs: 20_000 });
    const mine = r.stdout.split(/\n(?=Target: )/).find((b) => b.startsWith(`Target: ${this.o.iqn}`)) ?? '';
    return /iSCSI Session State:\s*(\S+)/.exec(mine)?.[1] ?? 'NONE';
  }

  protected override async finalState(): Promise<{ words: string; details: Record<string, unknown>; dataErrors: string[] }> {
    const state = await this.sessionState().catch(() => 'unknown');
    const scsi = await scsiErrorsSince(this.lab.node(this.o.initiator), this.mark, this.dataPath.replace('/dev/', ''));
    return { words: `session ${state}${scsi.length ? `; SCSI errors: ${scsi[0]}` : ''}`, details: { sessionState: state, device: this.dataPath }, dataErrors: scsi };
  }
}
