// iSER (UL-ISER-01): an LIO target (through its configfs tree: the same code on every lab, and it
// works where targetcli cannot run) with a file backstore on tmpfs and an iSER-enabled portal;
// open-iscsi with an `iser` iface on the initiator; fio with verification on the disk.
import { Subject, type Observable } from 'rxjs';
import { now, sleep, waitFor } from '../clock.ts';
import type { Lab } from '../lab/lab.ts';
import type { WorkloadEvent } from '../monitor/events.ts';
import { ipOf } from '../net/ip.ts';
import type { ConnectionRef } from '../timeline/timeline.ts';
import { runFio, type FioResult } from './fio.ts';
import { loadModules, unloadModules } from './modules.ts';
import { markKernelLog, scsiErrorsSince } from '../health/health.ts';
import { setupOrUndo, type Workload, type WorkloadResult } from './workload.ts';

export interface IserOptions {
  target: string;
  initiator: string;
  sizeMiB?: number;
  loops?: number;
  /** seconds iSCSI queues I/O while the session is down (above the test window) */
  replacementTimeoutS?: number;
  iqn?: string;
  /** fio MiB/s cap (honesty tests that corrupt data before fio's check reaches it) */
  rateMiBs?: number;
}

const CFG = '/sys/kernel/config/target';
const DIR = '/run/rf-iser';

/** Target: fileio backstore, iSCSI target + TPG + LUN, portal with iSER, open demo-mode ACLs. */
const TARGET_UP = `set -e
iqn=$1; ip=$2; size=$3; dir=$4; cfg=${CFG}
mkdir -p "$dir"
[ -e "$dir/disk.img" ] || { truncate -s "$size" "$dir/disk.img"; }
mkdir -p "$cfg/core/fileio_0/rf_disk"
echo "fd_dev_name=$dir/disk.img,fd_dev_size=$size" > "$cfg/core/fileio_0/rf_disk/control"
echo 1 > "$cfg/core/fileio_0/rf_disk/enable"
mkdir -p "$cfg/iscsi/$iqn/tpgt_1/lun/lun_0"
[ -e "$cfg/iscsi/$iqn/tpgt_1/lun/lun_0/rf_disk" ] || ln -s "$cfg/core/fileio_0/rf_disk" "$cfg/iscsi/$iqn/tpgt_1/lun/lun_0/rf_disk"
mkdir -p "$cfg/iscsi/$iqn/tpgt_1/np/$ip:3260"
echo 1 > "$cfg/iscsi/$iqn/tpgt_1/np/$ip:3260/iser"
a=$cfg/iscsi/$iqn/tpgt_1/attrib
echo 0 > "$a/authentication"; echo 1 > "$a/generate_node_acls"; echo 0 > "$a/demo_mode_write_protect"; echo 1 > "$a/cache_dynamic_acls"
echo 1 > "$cfg/iscsi/$iqn/tpgt_1/enable"`;

const TARGET_DOWN = `iqn=$1; ip=$2; dir=$3; cfg=${CFG}
t=$cfg/iscsi/$iqn/tpgt_1
[ -e "$t/enable" ] && echo 0 > "$t/enable"
rm -f "$t/lun/lun_0/rf_disk"
rmdir "$t/lun/lun_0" "$t/np/$ip:3260" 2>/dev/null
rmdir "$t" "$cfg/iscsi/$iqn" 2>/dev/null
[ -e "$cfg/core/fileio_0/rf_disk" ] && rmdir "$cfg/core/fileio_0/rf_disk"
rmdir "$cfg/core/fileio_0" 2>/dev/null
rm -rf "$dir"
true`;

export class IserWorkload implements Workload {
  readonly name = 'iser';
  readonly ulp = 'iser' as const;
  private readonly lab: Lab;
  private readonly o: Required<IserOptions>;
  private readonly extra = new Subject<WorkloadEvent>();
  /** one stable stream (monitors subscribe before I/O starts): fio's events are forwarded into it */
  readonly events$: Observable<WorkloadEvent> = this.extra.asObservable();
  private fio: ReturnType<typeof runFio> | undefined;
  private loaded = new Map<string, string[]>();
  private startedIscsid: number | undefined;
  private torn = false;
  device = '';
  done = 0;
  readonly errors: string[] = [];

  constructor(lab: Lab, o: IserOptions) {
    this.lab = lab;
    this.o = { rateMiBs: 0, sizeMiB: 48, loops: 3, replacementTimeoutS: 120, iqn: 'iqn.2024-01.lab.test:rf-iser', ...o };
  }

  private ip(n: string): string {
    return ipOf(this.lab.spec(n).bonds![0]!.address);
  }

  connection(): ConnectionRef {
    return {
      ulp: 'iser',
      label: `${this.o.initiator} → ${this.o.target} (iSER, ${this.o.iqn}, fio verify on ${this.device || 'the disk'})`,
      nodes: [this.o.initiator, this.o.target],
      ips: [this.ip(this.o.initiator), this.ip(this.o.target)],
      workload: this.name,
      kmsgDisconnect: ['detected conn error', 'iser: .*(disconnect|error)', 'isert: .*(disconnect|error)'],
      kmsgEstablished: [],
    };
  }

  /** Target up, initiator logged in over iSER, the disk found. */
  private readonly mark = `iser-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

  setup(): Promise<this> {
    return setupOrUndo(this, () => this.bringUp());
  }

  private async bringUp(): Promise<this> {
    const t = this.lab.node(this.o.target);
    const i = this.lab.node(this.o.initiator);
    await markKernelLog(i, this.mark); // SCSI errors are counted from here on
    this.loaded.set(this.o.target, await loadModules(t, ['target_core_mod', 'target_core_file', 'iscsi_target_mod', 'ib_isert']));
    await t.run(['sh', '-c', TARGET_UP, 'target-up', this.o.iqn, this.ip(this.o.target), String((this.o.sizeMiB + 8) * 2 ** 20), DIR], { timeoutMs: 60_000 });
    // sd_mod: udev would load it for the new SCSI disk; not every lab has udev (the VM lab does not).
    this.loaded.set(this.o.initiator, await loadModules(i, ['ib_iser', 'sd_mod']));
    await i.run(['mkdir', '-p', '/run/lock/iscsi']); // open-iscsi's lock dir (tmpfiles makes it on systemd hosts)
    if ((await i.exec(['pgrep', '-x', 'iscsid'])).exitCode !== 0) {
      await i.run(['iscsid']);
      const pid = (await i.exec(['pgrep', '-xo', 'iscsid'])).stdout.trim();
      this.startedIscsid = pid ? Number(pid) : undefined;
    }
    const portal = `${this.ip(this.o.target)}:3260`;
    await i.exec(['iscsiadm', '-m', 'iface', '-I', 'rf_iser', '-o', 'new']);
    await i.run(['iscsiadm', '-m', 'iface', '-I', 'rf_iser', '-o', 'update', '-n', 'iface.transport_name', '-v', 'iser']);
    await waitFor('iSCSI discovery', async () => ((await i.exec(['iscsiadm', '-m', 'discovery', '-t', 'st', '-p', portal, '-I', 'rf_iser'], { timeoutMs: 30_000 })).exitCode === 0 ? true : undefined), { timeoutMs: 60_000, intervalMs: 1000 });
    const node = ['iscsiadm', '-m', 'node', '-T', this.o.iqn, '-p', portal, '-I', 'rf_iser'];
    await i.run([...node, '-o', 'update', '-n', 'node.session.timeo.replacement_timeout', '-v', String(this.o.replacementTimeoutS)]);
    await i.run([...node, '--login'], { timeoutMs: 60_000 });
    // Prove the session really uses iSER, and find its disk.
    const session = await waitFor(
      'the iSER session and its disk',
      async () => {
        const r = await i.exec(['iscsiadm', '-m', 'session', '-P', '3'], { timeoutMs: 20_000 });
        const dev = /Attached scsi disk (\w+)\s+State: running/.exec(r.stdout)?.[1];
        return dev ? { dev, text: r.stdout } : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 1000 },
    );
    if (!/Iface Transport:\s*iser/.test(session.text)) throw new Error(`the iSCSI session does not use iser:\n${session.text}`);
    this.device = `/dev/${session.dev}`;
    return this;
  }

  async start(): Promise<void> {
    this.fio = runFio(this.lab.node(this.o.initiator), this.name, { filename: this.device, sizeMiB: this.o.sizeMiB, loops: this.o.loops, ...(this.o.rateMiBs ? { rateMiBs: this.o.rateMiBs } : {}) }, 30 * 60_000);
    this.fio.events$.subscribe((e) => {
      this.extra.next(e);
      if (e.kind === 'progress' && e.done !== undefined) this.done = e.done;
      if (e.kind === 'error') this.errors.push(typeof e.data?.text === 'string' ? e.data.text : '');
    });
    await sleep(0);
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
    return /iSCSI Session State:\s*(\S+)/.exec(r.stdout)?.[1] ?? 'NONE';
  }

  async finish(timeoutMs = 10 * 60_000): Promise<WorkloadResult> {
    const r: FioResult | undefined = this.fio ? await Promise.race([this.fio.result, sleep(timeoutMs).then(() => undefined)]) : undefined;
    const state = await this.sessionState().catch(() => 'unknown');
    const dev = this.device.replace('/dev/', '');
    const scsiErrors = (await scsiErrorsSince(this.lab.node(this.o.initiator), this.mark, dev)).join('\n');
    return {
      workload: this.name,
      ulp: 'iser',
      dataOk: !!r?.ok && !scsiErrors,
      summary: `${r ? r.summary : `fio did not finish within ${timeoutMs} ms`}; session ${state}${scsiErrors ? `; SCSI errors: ${scsiErrors.split('\n')[0]}` : ''}`,
      bytes: (r?.writtenBytes ?? 0) + (r?.readBytes ?? 0),
      details: { fio: r, sessionState: state, device: this.device, finishedAt: now() },
      errors: [...this.errors, ...(r?.verifyErrors ?? []), ...(scsiErrors ? scsiErrors.split('\n') : [])].slice(0, 40),
    };
  }

  async teardown(): Promise<void> {
    if (this.torn) return;
    this.torn = true;
    this.fio?.stop();
    this.extra.complete();
    const i = this.lab.node(this.o.initiator);
    const t = this.lab.node(this.o.target);
    await i.settle();
    const portal = `${this.ip(this.o.target)}:3260`;
    await i.exec(['iscsiadm', '-m', 'node', '-T', this.o.iqn, '-p', portal, '-I', 'rf_iser', '--logout'], { timeoutMs: 30_000 }).catch(() => undefined);
    await i.exec(['iscsiadm', '-m', 'node', '-T', this.o.iqn, '-p', portal, '-I', 'rf_iser', '-o', 'delete'], { timeoutMs: 30_000 }).catch(() => undefined);
    await i.exec(['iscsiadm', '-m', 'iface', '-I', 'rf_iser', '-o', 'delete'], { timeoutMs: 30_000 }).catch(() => undefined);
    if (this.startedIscsid) await i.exec(['kill', String(this.startedIscsid)]).catch(() => undefined);
    await t.exec(['sh', '-c', TARGET_DOWN, 'target-down', this.o.iqn, this.ip(this.o.target), DIR], { timeoutMs: 60_000 }).catch(() => undefined);
    for (const [n, mods] of this.loaded) await unloadModules(this.lab.node(n), mods);
  }
}
