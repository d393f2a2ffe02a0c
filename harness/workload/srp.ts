// SRP over the RDMA CM (UL-SRP-01): an LIO ib_srpt target through configfs (listening on an RDMA CM
// port, as blktests' srp tests do over rxe) with a file backstore on tmpfs; the ib_srp initiator logs
// in with `dest=IP:port`; fio with verification on the SCSI disk. ib_srp does not handle
// RDMA_CM_EVENT_ADDR_CHANGE ("Unhandled CM event"): it recovers only through QP errors and the SRP
// transport's timers (reconnect_delay, fast_io_fail_tmo, dev_loss_tmo).
import { Subject, type Observable } from 'rxjs';
import { now, sleep, waitFor } from '../clock.ts';
import type { Lab } from '../lab/lab.ts';
import type { WorkloadEvent } from '../monitor/events.ts';
import { ipOf } from '../net/ip.ts';
import { rdmaLinks } from '../fabric/fabric.ts';
import type { ConnectionRef } from '../timeline/timeline.ts';
import { runFio, type FioResult } from './fio.ts';
import { loadModules, unloadModules } from './modules.ts';
import { markKernelLog, scsiErrorsSince } from '../health/health.ts';
import { setupOrUndo, type Workload, type WorkloadResult } from './workload.ts';

export interface SrpOptions {
  target: string;
  initiator: string;
  sizeMiB?: number;
  loops?: number;
  /** the target's RDMA CM port */
  port?: number;
  /** SRP transport timers (s): reconnect attempts, fail fast, give up */
  reconnectDelayS?: number;
  fastIoFailTmoS?: number;
  devLossTmoS?: number;
}

const CFG = '/sys/kernel/config/target';
const DIR = '/run/rf-srp';

/**
 * Target: fileio backstore; ib_srpt listening on the RDMA CM port; one target port per RDMA port
 * (named by its GID without the fe80 prefix, or 0x+GID), a LUN, and ACLs named by IP address: an
 * RDMA CM login is named by an address — on 6.1 the *target's* own (srpt formats the cm_id's
 * src_addr), so both the initiator's and the target's are listed.
 */
const TARGET_UP = `set -e
port=$1; size=$2; dir=$3; ini=$4; shift 4; cfg=${CFG}
mkdir -p "$dir"
[ -e "$dir/disk.img" ] || truncate -s "$size" "$dir/disk.img"
mkdir -p "$cfg/core/fileio_1/rf_srp"
echo "fd_dev_name=$dir/disk.img,fd_dev_size=$size" > "$cfg/core/fileio_1/rf_srp/control"
echo rfsrp0 > "$cfg/core/fileio_1/rf_srp/wwn/vpd_unit_serial"
echo 1 > "$cfg/core/fileio_1/rf_srp/enable"
mkdir -p "$cfg/srpt"
[ -e "$cfg/srpt/discovery_auth/rdma_cm_port" ] && echo "$port" > "$cfg/srpt/discovery_auth/rdma_cm_port"
n=0
for d; do for p in /sys/class/infiniband/$d/ports/*; do
  gid=$(cat "$p/gids/0")
  case $gid in fe80:*) id=\${gid#fe80:0000:0000:0000:} ;; *) id=0x$(echo "$gid" | tr -d :) ;; esac
  t=$cfg/srpt/$id/$id
  mkdir -p "$t/lun/lun_0"
  [ -e "$t/lun/lun_0/rf_srp" ] || ln -s "$cfg/core/fileio_1/rf_srp" "$t/lun/lun_0/rf_srp"
  for a in $ini; do
    mkdir -p "$t/acls/$a/lun_0"
    [ -e "$t/acls/$a/lun_0/lun_0" ] || ln -s "$t/lun/lun_0" "$t/acls/$a/lun_0/lun_0"
  done
  echo 1 > "$t/enable"
  n=$((n+1))
done; done
[ "$n" -gt 0 ] || { echo "no RDMA port for ib_srpt" >&2; exit 1; }`;

const TARGET_DOWN = `dir=$1; cfg=${CFG}
for e in "$cfg"/srpt/*/*/enable; do [ -e "$e" ] && echo 0 > "$e"; done
rm -f "$cfg"/srpt/*/*/acls/*/lun_0/lun_0 2>/dev/null
rmdir "$cfg"/srpt/*/*/acls/*/lun_0 "$cfg"/srpt/*/*/acls/* 2>/dev/null
rm -f "$cfg"/srpt/*/*/lun/lun_0/rf_srp 2>/dev/null
rmdir "$cfg"/srpt/*/*/lun/lun_0 2>/dev/null
rmdir "$cfg"/srpt/*/* "$cfg"/srpt/* 2>/dev/null
rmdir "$cfg/srpt" 2>/dev/null
[ -e "$cfg/core/fileio_1/rf_srp" ] && rmdir "$cfg/core/fileio_1/rf_srp"
rmdir "$cfg/core/fileio_1" 2>/dev/null
rm -rf "$dir"
true`;

/** Every RDMA port has a GID 0 (not all zeros). */
const GIDS_READY = `n=0
for d; do for p in /sys/class/infiniband/$d/ports/*; do
  case $(cat "$p/gids/0" 2>/dev/null) in ''|0000:0000:0000:0000:0000:0000:0000:0000) exit 1 ;; esac
  n=$((n+1))
done; done
[ "$n" -gt 0 ]`;

/** Initiator: one add_target per SRP host of the RDMA device (blktests' do_rdma_cm_login). */
const LOGIN = `set -e
guid=$1; src=$2; dest=$3; shift 3
n=0
for d; do for h in /sys/class/infiniband_srp/srp-$d-*; do
  [ -e "$h/add_target" ] || continue
  gid=$(cat "/sys/class/infiniband/$(cat "$h/ibdev")/ports/$(cat "$h/port")/gids/0" | tr -d :)
  echo "id_ext=$guid,ioc_guid=$guid,initiator_ext=$(echo "$gid" | cut -c1-16),src=$src,dest=$dest" > "$h/add_target" && n=$((n+1))
done; done
[ "$n" -gt 0 ]`;

/** reconnect_delay, fast_io_fail_tmo, dev_loss_tmo on every SRP remote port (fast_io_fail first: it must stay below dev_loss). */
const SET_TIMERS = `set -e
for p in /sys/class/srp_remote_ports/*; do
  echo "$3" > "$p/dev_loss_tmo"; echo "$2" > "$p/fast_io_fail_tmo"; echo "$1" > "$p/reconnect_delay"
done`;

/** The SCSI disk behind the SRP remote port. */
const FIND_DISK = `for p in /sys/class/scsi_host/*/orig_dgid; do
  [ -e "$p" ] || continue
  h=\${p%/orig_dgid}; h=\${h#/sys/class/scsi_host/host}
  for d in /sys/class/scsi_device/$h:*/device/block/*; do [ -e "$d" ] && basename "$d"; done
done | head -n1`;

export class SrpWorkload implements Workload {
  readonly name = 'srp';
  readonly ulp = 'srp' as const;
  private readonly lab: Lab;
  private readonly o: Required<SrpOptions>;
  private readonly extra = new Subject<WorkloadEvent>();
  readonly events$: Observable<WorkloadEvent> = this.extra.asObservable();
  private fio: ReturnType<typeof runFio> | undefined;
  private loaded = new Map<string, string[]>();
  private torn = false;
  private readonly mark = `srp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  device = '';
  done = 0;
  readonly errors: string[] = [];

  constructor(lab: Lab, o: SrpOptions) {
    this.lab = lab;
    this.o = { sizeMiB: 48, loops: 3, port: 5555, reconnectDelayS: 10, fastIoFailTmoS: 15, devLossTmoS: 600, ...o };
  }

  /** The RDMA devices on the node's bond or its slaves (`rdma -j link`). */
  private async bondDevices(node: string): Promise<string[]> {
    const b = this.lab.spec(node).bonds![0]!;
    const names = [b.name, ...b.slaves.map((x) => x.name)];
    const links = (await rdmaLinks(this.lab.node(node))).filter((l) => names.includes(l.netdev ?? ''));
    const devs = [...new Set(links.map((l) => l.ifname.split('/')[0]!))];
    if (!devs.length) throw new Error(`${node}: no RDMA device on ${names.join(', ')}`);
    return devs;
  }

  private ip(n: string): string {
    return ipOf(this.lab.spec(n).bonds![0]!.address);
  }

  connection(): ConnectionRef {
    return {
      ulp: 'srp',
      label: `${this.o.initiator} → ${this.o.target} (SRP over RDMA CM, port ${this.o.port}, fio verify on ${this.device || 'the disk'})`,
      nodes: [this.o.initiator, this.o.target],
      ips: [this.ip(this.o.initiator), this.ip(this.o.target)],
      workload: this.name,
      kmsgDisconnect: ['ib_srp: .*(failed|error|disconnect)', 'srp.*(QP error|failed receive|failed send)', 'rport-.*: (blocked|failed)'],
      kmsgEstablished: ['ib_srp: .*reconnect succeeded', 'rport-.*: reconnect succeeded'],
    };
  }

  /** Target up with ib_srpt on the RDMA CM port, initiator logged in, the disk found. */
  setup(): Promise<this> {
    return setupOrUndo(this, () => this.bringUp());
  }

  private async bringUp(): Promise<this> {
    const t = this.lab.node(this.o.target);
    const i = this.lab.node(this.o.initiator);
    await markKernelLog(i, this.mark);
    // ib_srpt takes the RDMA CM port as a module parameter on older kernels, via configfs on newer.
    this.loaded.set(this.o.target, await loadModules(t, ['target_core_mod', 'target_core_file']));
    const params = (await t.exec(['modinfo', '-p', 'ib_srpt'])).stdout;
    const srptLoaded = (await t.exec(['test', '-d', '/sys/module/ib_srpt'])).exitCode === 0;
    if (!srptLoaded) {
      await t.run(['modprobe', 'ib_srpt', ...(/^rdma_cm_port:/m.test(params) ? [`rdma_cm_port=${this.o.port}`] : [])], { timeoutMs: 60_000 });
      this.loaded.get(this.o.target)!.push('ib_srpt');
    }
    // srpt names its ports by GID 0, which rxe fills in only after the device appears.
    const devs = new Map<string, string[]>();
    for (const n of [t, i]) {
      devs.set(n.name, await this.bondDevices(n.name));
      await waitFor(`GID 0 on the RDMA ports of ${n.name}'s bond (${devs.get(n.name)!.join(', ')})`, async () => ((await n.exec(['sh', '-c', GIDS_READY, 'gids', ...devs.get(n.name)!])).exitCode === 0 ? true : undefined), { timeoutMs: 30_000, intervalMs: 250 });
    }
    // A stale srpt tree (from a device since recreated) would bind our names to a dead port.
    await t.run(['sh', '-c', TARGET_DOWN, 'srp-target-clean', DIR], { timeoutMs: 60_000 });
    await t.run(['sh', '-c', TARGET_UP, 'srp-target-up', String(this.o.port), String((this.o.sizeMiB + 8) * 2 ** 20), DIR, `${this.ip(this.o.initiator)} ${this.ip(this.o.target)}`, ...devs.get(t.name)!], { timeoutMs: 60_000 });
    const guid = (await t.run(['cat', '/sys/module/ib_srpt/parameters/srpt_service_guid'])).stdout.trim();
    this.loaded.set(this.o.initiator, await loadModules(i, ['ib_srp', 'sd_mod']));
    let last = '';
    await waitFor(
      'the SRP login',
      async () => {
        const r = await i.exec(['sh', '-c', LOGIN, 'srp-login', guid, this.ip(this.o.initiator), `${this.ip(this.o.target)}:${this.o.port}`, ...devs.get(i.name)!], { timeoutMs: 30_000 });
        last = r.stderr.trim();
        return r.exitCode === 0 ? true : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 1000 },
    ).catch((e: Error) => {
      throw new Error(`${e.message} (last attempt: ${last || 'no error text'}; see the kernel logs for the SRP_LOGIN_REQ verdict)`);
    });
    // The SRP transport's timers are properties of the remote port, not login parameters.
    await i.run(['sh', '-c', SET_TIMERS, 'srp-timers', String(this.o.reconnectDelayS), String(this.o.fastIoFailTmoS), String(this.o.devLossTmoS)]);
    const dev = await waitFor('the SRP disk', async () => (await i.exec(['sh', '-c', FIND_DISK])).stdout.trim() || undefined, { timeoutMs: 60_000, intervalMs: 500 });
    this.device = `/dev/${dev}`;
    return this;
  }

  async start(): Promise<void> {
    this.fio = runFio(this.lab.node(this.o.initiator), this.name, { filename: this.device, sizeMiB: this.o.sizeMiB, loops: this.o.loops }, 30 * 60_000);
    this.fio.events$.subscribe((e) => {
      this.extra.next(e);
      if (e.kind === 'progress' && e.done !== undefined) this.done = e.done;
      if (e.kind === 'error') this.errors.push(typeof e.data?.text === 'string' ? e.data.text : '');
    });
    await sleep(0);
  }

  /** The SRP remote port's state (running, blocked, fail-fast, lost). */
  async portState(): Promise<string> {
    const r = await this.lab.node(this.o.initiator).exec(['sh', '-c', 'cat /sys/class/srp_remote_ports/*/state 2>/dev/null | head -n1'], { timeoutMs: 20_000 });
    return r.stdout.trim() || 'none';
  }

  async finish(timeoutMs = 10 * 60_000): Promise<WorkloadResult> {
    const r: FioResult | undefined = this.fio ? await Promise.race([this.fio.result, sleep(timeoutMs).then(() => undefined)]) : undefined;
    const state = await this.portState().catch(() => 'unknown');
    const dev = this.device.replace('/dev/', '');
    const scsiErrors = (await scsiErrorsSince(this.lab.node(this.o.initiator), this.mark, dev)).join('\n');
    return {
      workload: this.name,
      ulp: 'srp',
      dataOk: !!r?.ok && !scsiErrors,
      summary: `${r ? r.summary : `fio did not finish within ${timeoutMs} ms`}; remote port ${state}${scsiErrors ? `; SCSI errors: ${scsiErrors.split('\n')[0]}` : ''}`,
      bytes: (r?.writtenBytes ?? 0) + (r?.readBytes ?? 0),
      details: { fio: r, portState: state, device: this.device, finishedAt: now() },
      errors: [...this.errors, ...(r?.verifyErrors ?? []), ...(scsiErrors ? scsiErrors.split('\n') : [])].slice(0, 40),
    };
  }

  async teardown(): Promise<void> {
    if (this.torn) return;
    this.torn = true;
    this.fio?.stop();
    this.extra.complete();
    const i = this.lab.node(this.o.initiator);
    await i.settle();
    await i.exec(['sh', '-c', 'for p in /sys/class/srp_remote_ports/*; do [ -e "$p/delete" ] && echo 1 > "$p/delete"; done; true'], { timeoutMs: 30_000 }).catch(() => undefined);
    await this.lab.node(this.o.target).exec(['sh', '-c', TARGET_DOWN, 'srp-target-down', DIR], { timeoutMs: 60_000 }).catch(() => undefined);
    for (const [n, mods] of this.loaded) await unloadModules(this.lab.node(n), mods);
  }
}
