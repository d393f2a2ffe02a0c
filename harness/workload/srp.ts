// SRP over the RDMA CM (UL-SRP-01): an LIO ib_srpt target through configfs (listening on an RDMA CM
// port, as blktests' srp tests do over rxe) with a file backstore on tmpfs; the ib_srp initiator logs
// in with `dest=IP:port`; fio with verification on the SCSI disk. ib_srp does not handle
// RDMA_CM_EVENT_ADDR_CHANGE ("Unhandled CM event"): it recovers only through QP errors and the SRP
// transport's timers (reconnect_delay, fast_io_fail_tmo, dev_loss_tmo).
// ib_srpt's enable is per RDMA port (srpt_enable_tpg sets sport->enabled; dropping any TPG clears
// it): a target someone else has on the bond's RDMA port would be disabled by tearing ours down, so
// then the test is skipped. The initiator touches only the remote ports its own login created.
import { waitFor, within } from '../clock.ts';
import type { Lab } from '../lab/lab.ts';
import { rdmaLinks } from '../fabric/fabric.ts';
import type { ConnectionRef } from '../timeline/timeline.ts';
import { kernelLogSince, markKernelLog, scsiErrorsSince } from '../health/health.ts';
import { BlockStorageWorkload, LabPreconditionError, type BlockStorageOptions } from './block-storage.ts';
import { modulesToLoad } from './modules.ts';

export interface SrpOptions extends BlockStorageOptions {
  target: string;
  initiator: string;
  /** the target's RDMA CM port (an ib_srpt already listening on one keeps its own) */
  port?: number;
  /** SRP transport timers (s): reconnect attempts, fail fast, give up */
  reconnectDelayS?: number;
  fastIoFailTmoS?: number;
  devLossTmoS?: number;
}

const CFG = '/sys/kernel/config/target';
const DIR = '/run/rf-srp';

/**
 * ib_srpt's two names for an RDMA port, from GID 0 (srpt_refresh_port): the interface ID, the GID's
 * last 64 bits ("%04x:%04x:%04x:%04x"), and the whole GID ("0x%016llx%016llx"); "GUID GID" per port.
 * Not every GID is fe80::/64 (siw's is the MAC, then zeros: its interface ID is all zeros).
 */
const PORT_NAMES = `for d; do for p in /sys/class/infiniband/$d/ports/*; do
  g=$(cat "$p/gids/0")
  echo "$(echo "$g" | cut -d: -f5-8) 0x$(echo "$g" | tr -d :)"
done; done`;

/** Every RDMA port has a GID 0 (not all zeros). */
const GIDS_READY = `n=0
for d; do for p in /sys/class/infiniband/$d/ports/*; do
  case $(cat "$p/gids/0" 2>/dev/null) in ''|0000:0000:0000:0000:0000:0000:0000:0000) exit 1 ;; esac
  n=$((n+1))
done; done
[ "$n" -gt 0 ]`;

/**
 * Target: fileio backstore in the HBA given; per RDMA port a target (its GID name), our TPG, a LUN,
 * and ACLs named by IP address: an RDMA CM login is named by an address — on 6.1 the *target's*
 * own (srpt formats the cm_id's src_addr), so both the initiator's and the target's are listed.
 */
const TARGET_UP = `set -e
size=$1; dir=$2; hba=$3; ini=$4; shift 4; cfg=${CFG}
mkdir -p "$dir"
[ -e "$dir/disk.img" ] || truncate -s "$size" "$dir/disk.img"
mkdir -p "$cfg/core/$hba/rf_srp"
echo "fd_dev_name=$dir/disk.img,fd_dev_size=$size" > "$cfg/core/$hba/rf_srp/control"
echo rfsrp0 > "$cfg/core/$hba/rf_srp/wwn/vpd_unit_serial"
echo 1 > "$cfg/core/$hba/rf_srp/enable"
for id; do
  t=$cfg/srpt/$id/rf_tpg
  mkdir -p "$t/lun/lun_0"
  ln -s "$cfg/core/$hba/rf_srp" "$t/lun/lun_0/rf_srp"
  for a in $ini; do mkdir -p "$t/acls/$a/lun_0"; ln -s "$t/lun/lun_0" "$t/acls/$a/lun_0/lun_0"; done
  echo 1 > "$t/enable"
done`;

/** Removes exactly what TARGET_UP created. */
const TARGET_DOWN = `dir=$1; hba=$2; shift 2; cfg=${CFG}
for id; do
  t=$cfg/srpt/$id/rf_tpg
  [ -e "$t/enable" ] && echo 0 > "$t/enable"
  for l in "$t"/acls/*/lun_0/lun_0 "$t/lun/lun_0/rf_srp"; do [ -L "$l" ] && rm -f "$l"; done
  for d in "$t"/acls/*/lun_0 "$t"/acls/* "$t/lun/lun_0" "$t" "$cfg/srpt/$id"; do [ -d "$d" ] && rmdir "$d"; done
done
for d in "$cfg/core/$hba/rf_srp" "$cfg/core/$hba"; do [ ! -e "$d" ] || rmdir "$d"; done
rm -rf "$dir"
[ ! -e "$cfg/core/$hba" ]`;

/** Initiator: one add_target per SRP host of the RDMA devices (blktests' do_rdma_cm_login). */
const LOGIN = `set -e
guid=$1; src=$2; dest=$3; shift 3
n=0
for d; do for h in /sys/class/infiniband_srp/srp-$d-*; do
  [ -e "$h/add_target" ] || continue
  gid=$(cat "/sys/class/infiniband/$(cat "$h/ibdev")/ports/$(cat "$h/port")/gids/0" | tr -d :)
  echo "id_ext=$guid,ioc_guid=$guid,initiator_ext=$(echo "$gid" | cut -c1-16),src=$src,dest=$dest" > "$h/add_target" && n=$((n+1))
done; done
[ "$n" -gt 0 ]`;

/** Deletes the SRP remote ports that are not in the list given (the ones that existed before). */
const DELETE_NEW_RPORTS = `for p in /sys/class/srp_remote_ports/*; do
  [ -e "$p/delete" ] || continue
  case " $* " in *" \${p##*/} "*) continue ;; esac
  echo 1 > "$p/delete"
done; true`;

const RPORTS = 'for p in /sys/class/srp_remote_ports/*; do [ -e "$p" ] && echo "${p##*/}"; done; true';

/** Timers of the remote ports given (fast_io_fail first: it must stay below dev_loss). */
const SET_TIMERS = `set -e
r=$1; f=$2; l=$3; shift 3
for p; do
  p=/sys/class/srp_remote_ports/$p
  echo "$l" > "$p/dev_loss_tmo"; echo "$f" > "$p/fast_io_fail_tmo"; echo "$r" > "$p/reconnect_delay"
done`;

/** The SCSI disks behind remote ports "port-H:N": the block devices of SCSI host H. */
const DISKS_OF = `for p; do h=\${p#port-}; h=\${h%%:*}
  for d in /sys/class/scsi_device/$h:*/device/block/*; do [ -e "$d" ] && basename "$d"; done
done | head -n1`;

export class SrpWorkload extends BlockStorageWorkload {
  readonly name = 'srp';
  readonly ulp = 'srp' as const;
  protected readonly client: string;
  private readonly o: Required<Omit<SrpOptions, keyof BlockStorageOptions>>;
  private readonly mark = `srp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  /** the remote ports this workload's login created */
  rports: string[] = [];

  constructor(lab: Lab, o: SrpOptions) {
    super(lab, 'srp', o);
    this.o = { port: 5555, reconnectDelayS: 10, fastIoFailTmoS: 15, devLossTmoS: 600, ...o };
    this.client = o.initiator;
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

  connection(): ConnectionRef {
    return {
      ulp: 'srp',
      label: `${this.o.initiator} → ${this.o.target} (SRP over RDMA CM, port ${this.o.port}, fio verify on ${this.dataPath || 'the disk'})`,
      nodes: [this.o.initiator, this.o.target],
      ips: [this.ip(this.o.initiator), this.ip(this.o.target)],
      ports: [this.o.port],
      workload: this.name,
      kmsgDisconnect: ['ib_srp: .*(failed|error|disconnect)', 'srp.*(QP error|failed receive|failed send)', 'rport-.*: (blocked|failed)'],
      kmsgEstablished: ['ib_srp: .*reconnect succeeded', 'rport-.*: reconnect succeeded'],
    };
  }

  protected async bringUp(): Promise<string> {
    const t = this.lab.node(this.o.target);
    const i = this.lab.node(this.o.initiator);
    await Promise.all([markKernelLog(i, this.mark), markKernelLog(t, this.mark)]);
    await this.modules(t, ['target_core_mod', 'target_core_file']);
    // ib_srpt takes the RDMA CM port as a module parameter on older kernels, via configfs on newer.
    const params = (await t.exec(['modinfo', '-p', 'ib_srpt'])).stdout;
    const srpt = await modulesToLoad(t, ['ib_srpt']);
    if (srpt.length) {
      await this.undo.change({ node: t.name, what: `unload ${srpt.join(', ')}`, kind: 'modules', modules: srpt }, () =>
        t.run(['modprobe', 'ib_srpt', ...(/^rdma_cm_port:/m.test(params) ? [`rdma_cm_port=${this.o.port}`] : [])], { timeoutMs: 60_000 }),
      );
    }
    // srpt's configfs group (and its discovery_auth/rdma_cm_port) exists only once someone made the
    // fabric directory: after a plain modprobe nothing listens, and every login is rejected with
    // reason 0x8 (invalid service ID). Making it takes a reference on ib_srpt; removing it drops it.
    if ((await t.exec(['test', '-d', `${CFG}/srpt`])).exitCode !== 0) {
      await this.undo.change({ node: t.name, what: 'remove the srpt fabric directory', kind: 'argv', argv: ['sh', '-c', '[ ! -d "$1" ] || rmdir "$1"', 'rm-srpt', `${CFG}/srpt`] }, () => t.run(['mkdir', `${CFG}/srpt`]));
    }
    const cmPort = `${CFG}/srpt/discovery_auth/rdma_cm_port`;
    const listening = (await t.run(['cat', cmPort])).stdout.trim();
    if (!/^\d+$/.test(listening)) throw new Error(`${t.name}: ${cmPort} reads ${JSON.stringify(listening)}, not a port number`);
    if (listening !== '0' && listening !== String(this.o.port)) this.o.port = Number(listening); // someone's ib_srpt: its port
    else if (listening === '0') await this.undo.change({ node: t.name, what: 'stop ib_srpt listening on the RDMA CM port', kind: 'argv', argv: ['sh', '-c', 'echo 0 > "$1"', 'srpt-port', cmPort] }, () => t.writeFile(cmPort, String(this.o.port)));

    // srpt names its ports by GID 0, which rxe fills in only after the device appears.
    const devs = new Map<string, string[]>();
    for (const n of [t, i]) {
      devs.set(n.name, await this.bondDevices(n.name));
      await waitFor(`GID 0 on the RDMA ports of ${n.name}'s bond (${devs.get(n.name)!.join(', ')})`, async () => ((await n.exec(['sh', '-c', GIDS_READY, 'gids', ...devs.get(n.name)!])).exitCode === 0 ? true : undefined), { timeoutMs: 30_000, intervalMs: 250 });
    }
    const names = (await t.run(['sh', '-c', PORT_NAMES, 'names', ...devs.get(t.name)!])).stdout.split('\n').filter(Boolean).map((l) => l.split(' ') as [string, string]);
    const taken = (await t.run(['sh', '-c', 'for n; do [ -e "/sys/kernel/config/target/srpt/$n" ] && echo "$n"; done; true', 'taken', ...names.flat()])).stdout.split('\n').filter(Boolean);
    if (taken.length) {
      throw new LabPreconditionError(`ib_srpt on ${t.name} already has a target on the bond's RDMA port (${taken.join(', ')}): srpt's enable is per port, so the harness could not tear its own target down without disabling that one`);
    }
    const hba = await this.freeHba(t, 'fileio');
    // Ours is named by the interface ID: srpt matches an RDMA CM login against the ACLs of a
    // GID-named port by the initiator's port ID only (srpt_cm_req_recv), never by its address.
    const ids = names.map((n) => n[0]);
    await this.undo.change({ node: t.name, what: `remove the SRP target (${ids.join(', ')}/rf_tpg, ${hba}/rf_srp)`, kind: 'argv', argv: ['sh', '-c', TARGET_DOWN, 'srp-target-down', DIR, hba, ...ids] }, () =>
      t.run(['sh', '-c', TARGET_UP, 'srp-target-up', String((this.size.sizeMiB + 8) * 2 ** 20), DIR, hba, `${this.ip(this.o.initiator)} ${this.ip(this.o.target)}`, ...ids], { timeoutMs: 60_000 }),
    );
    const guid = (await t.run(['cat', '/sys/module/ib_srpt/parameters/srpt_service_guid'])).stdout.trim();

    await this.modules(i, ['ib_srp', 'sd_mod']);
    const before = (await i.run(['sh', '-c', RPORTS, 'srp-rports'])).stdout.split('\n').filter(Boolean);
    let last = '';
    await this.undo.change({ node: i.name, what: 'delete the SRP remote ports the harness logged in to', kind: 'argv', argv: ['sh', '-c', DELETE_NEW_RPORTS, 'srp-logout', ...before] }, () =>
      waitFor(
        'the SRP login',
        async (left) => {
          const r = await i.exec(['sh', '-c', LOGIN, 'srp-login', guid, this.ip(this.o.initiator), `${this.ip(this.o.target)}:${this.o.port}`, ...devs.get(i.name)!], { timeoutMs: within(left, 30_000) });
          last = r.stderr.trim();
          return r.exitCode === 0 ? true : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 1000 },
      ).catch(async (e: Error) => {
        // The write's errno says little (EIO, ECONNRESET); the kernel logs say why: both sides' SRP lines.
        const said = (await Promise.all([i, t].map(async (n) => (await kernelLogSince(n, this.mark)).filter((k) => /srp|rdma_cm|RDMA CM|infiniband|scsi host\d+:|REJ/i.test(k.text)).slice(-8).map((k) => `${n.name}: ${k.text}`)))).flat();
        throw new Error(`${e.message} (last attempt: ${last || 'no error text'}; kernel log since the set-up: ${said.length ? `\n  ${said.join('\n  ')}` : 'no SRP lines'})`);
      }),
    );
    this.rports = (await i.run(['sh', '-c', RPORTS, 'srp-rports'])).stdout.split('\n').filter((p) => p && !before.includes(p));
    if (!this.rports.length) throw new Error('the SRP login created no remote port');
    // The SRP transport's timers are properties of the remote port, not login parameters.
    await i.run(['sh', '-c', SET_TIMERS, 'srp-timers', String(this.o.reconnectDelayS), String(this.o.fastIoFailTmoS), String(this.o.devLossTmoS), ...this.rports]);
    const dev = await waitFor('the SRP disk', async () => (await i.exec(['sh', '-c', DISKS_OF, 'disks', ...this.rports])).stdout.trim() || undefined, { timeoutMs: 60_000, intervalMs: 500 });
    return `/dev/${dev}`;
  }

  /** The state of this workload's SRP remote port (running, blocked, fail-fast, lost). */
  async portState(): Promise<string> {
    const p = this.rports[0];
    if (!p) return 'none';
    const r = await this.lab.node(this.o.initiator).exec(['cat', `/sys/class/srp_remote_ports/${p}/state`], { timeoutMs: 20_000 });
    return r.stdout.trim() || 'none';
  }

  protected override async finalState(): Promise<{ words: string; details: Record<string, unknown>; dataErrors: string[] }> {
    const state = await this.portState().catch(() => 'unknown');
    const scsi = await scsiErrorsSince(this.lab.node(this.o.initiator), this.mark, this.dataPath.replace('/dev/', ''));
    return { words: `remote port ${state}${scsi.length ? `; SCSI errors: ${scsi[0]}` : ''}`, details: { portState: state, device: this.dataPath }, dataErrors: scsi };
  }
}
