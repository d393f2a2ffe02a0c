// NVMe over Fabrics, RDMA (UL-NVME-01): an nvmet-rdma target through configfs (a file-backed
// namespace on tmpfs), `nvme connect -t rdma --reconnect-delay … --ctrl-loss-tmo …` on the host,
// the controller state as a stream (live / connecting / resetting), fio with verification.
// Its subsystem has its own NQN; its port takes an ID and a service ID no existing port uses, so a
// user's nvmet ports and subsystems are never changed.
import { waitFor, within } from '../clock.ts';
import { NAP_SETUP, nap } from '../node/poll.ts';
import type { Lab } from '../lab/lab.ts';
import type { ConnectionRef } from '../timeline/timeline.ts';
import { BlockStorageWorkload, type BlockStorageOptions } from './block-storage.ts';

export interface NvmeOptions extends BlockStorageOptions {
  target: string;
  host: string;
  reconnectDelayS?: number;
  ctrlLossTmoS?: number;
  nqn?: string;
}

const CFG = '/sys/kernel/config/nvmet';
const DIR = '/run/rf-nvme';

/** Existing ports: "ID TRADDR TRSVCID" per line. */
const PORTS = `for p in ${CFG}/ports/*; do [ -d "$p" ] || continue; echo "\${p##*/} $(cat "$p/addr_traddr") $(cat "$p/addr_trsvcid")"; done; true`;

const TARGET_UP = `set -e
nqn=$1; ip=$2; size=$3; dir=$4; port=$5; svc=$6; cfg=${CFG}
[ ! -e "$cfg/subsystems/$nqn" ] || { echo "an nvmet subsystem $nqn exists already" >&2; exit 1; }
[ ! -e "$cfg/ports/$port" ] || { echo "nvmet port $port exists already" >&2; exit 1; }
mkdir -p "$dir"; [ -e "$dir/ns.img" ] || truncate -s "$size" "$dir/ns.img"
mkdir "$cfg/subsystems/$nqn"
echo 1 > "$cfg/subsystems/$nqn/attr_allow_any_host"
mkdir "$cfg/subsystems/$nqn/namespaces/1"
printf '%s' "$dir/ns.img" > "$cfg/subsystems/$nqn/namespaces/1/device_path"
# the file backend opens with O_DIRECT unless buffered: tmpfs refuses O_DIRECT (EINVAL)
echo 1 > "$cfg/subsystems/$nqn/namespaces/1/buffered_io"
echo 1 > "$cfg/subsystems/$nqn/namespaces/1/enable"
mkdir "$cfg/ports/$port"
echo ipv4 > "$cfg/ports/$port/addr_adrfam"; echo rdma > "$cfg/ports/$port/addr_trtype"
echo "$ip" > "$cfg/ports/$port/addr_traddr"; echo "$svc" > "$cfg/ports/$port/addr_trsvcid"
ln -s "$cfg/subsystems/$nqn" "$cfg/ports/$port/subsystems/$nqn"`;

const TARGET_DOWN = `nqn=$1; dir=$2; port=$3; cfg=${CFG}
rm -f "$cfg/ports/$port/subsystems/$nqn"
[ ! -e "$cfg/ports/$port" ] || rmdir "$cfg/ports/$port"
[ -e "$cfg/subsystems/$nqn/namespaces/1/enable" ] && echo 0 > "$cfg/subsystems/$nqn/namespaces/1/enable"
for d in "$cfg/subsystems/$nqn/namespaces/1" "$cfg/subsystems/$nqn"; do [ ! -e "$d" ] || rmdir "$d"; done
rm -rf "$dir"
[ ! -e "$cfg/subsystems/$nqn" ] && [ ! -e "$cfg/ports/$port" ]`;

/** Prints "EPOCHREALTIME state" whenever the controller's state changes. */
const STATE_POLL = `${NAP_SETUP}
prev=
while :; do
  read -r s < "/sys/class/nvme/$1/state" || s=gone
  [ "$s" != "$prev" ] && echo "$EPOCHREALTIME $s" && prev=$s
  ${nap('0.05')}
done`;

export class NvmeWorkload extends BlockStorageWorkload {
  readonly name = 'nvme';
  readonly ulp = 'nvme' as const;
  protected readonly client: string;
  private readonly o: Required<Omit<NvmeOptions, keyof BlockStorageOptions>>;
  ctrl = '';
  state = '';
  /** the nvmet port this workload made, and its RDMA CM service ID */
  portId = 0;
  serviceId = 4420;
  readonly states: { t: number; state: string }[] = [];

  constructor(lab: Lab, o: NvmeOptions) {
    super(lab, 'nvme', o);
    this.o = { reconnectDelayS: 1, ctrlLossTmoS: 600, nqn: 'nqn.2024-01.lab.test:rf-nvme', ...o };
    this.client = o.host;
  }

  connection(): ConnectionRef {
    return {
      ulp: 'nvme',
      label: `${this.o.host} → ${this.o.target} (NVMe/RDMA ${this.o.nqn}, reconnect-delay ${this.o.reconnectDelayS} s, fio verify on ${this.dataPath || 'the namespace'})`,
      nodes: [this.o.host, this.o.target],
      ips: [this.ip(this.o.host), this.ip(this.o.target)],
      ports: [this.serviceId],
      workload: this.name,
      kmsgDisconnect: ['nvme nvme\\d+: (starting error recovery|Reconnecting|RECV for|I/O .* timeout)', 'nvmet_rdma: .*(disconnect|error)'],
      kmsgEstablished: ['nvme nvme\\d+: Successfully reconnected'],
    };
  }

  protected async bringUp(): Promise<string> {
    const t = this.lab.node(this.o.target);
    const h = this.lab.node(this.o.host);
    const ip = this.ip(this.o.target);
    // The target and the host's modules at once (nothing waits for the other until connect).
    await this.bothSides(
      (async () => {
        await this.modules(t, ['nvmet', 'nvmet_rdma']);
        // A port ID nobody has, and a service ID nobody listens on at this address.
        const ports = (await t.run(['sh', '-c', PORTS, 'nvmet-ports'], { timeoutMs: 15_000 })).stdout.split('\n').filter(Boolean).map((l) => l.split(' '));
        const ids = new Set(ports.map((p) => Number(p[0])));
        const svcs = new Set(ports.filter((p) => p[1] === ip || p[1] === '0.0.0.0').map((p) => Number(p[2])));
        for (this.portId = 4420; ids.has(this.portId); this.portId++);
        for (this.serviceId = 4420; svcs.has(this.serviceId); this.serviceId++);
        await this.undo.change({ node: t.name, what: `remove the nvmet subsystem ${this.o.nqn} and port ${this.portId}`, kind: 'argv', argv: ['sh', '-c', TARGET_DOWN, 'nvmet-down', this.o.nqn, DIR, String(this.portId)] }, () =>
          t.run(['sh', '-c', TARGET_UP, 'nvmet-up', this.o.nqn, ip, String((this.size.sizeMiB + 8) * 2 ** 20), DIR, String(this.portId), String(this.serviceId)], { timeoutMs: 60_000 }),
        );
      })(),
      this.modules(h, ['nvme_rdma']),
    );
    await this.undo.change({ node: h.name, what: `disconnect from ${this.o.nqn}`, kind: 'argv', argv: ['sh', '-c', 'nvme disconnect -n "$1" >/dev/null 2>&1; true', 'nvme-disconnect', this.o.nqn] }, () =>
      waitFor(
        'nvme connect over RDMA',
        async (left) => {
          const r = await h.exec(
            ['nvme', 'connect', '-t', 'rdma', '-a', ip, '-s', String(this.serviceId), '-n', this.o.nqn, '--reconnect-delay', String(this.o.reconnectDelayS), '--ctrl-loss-tmo', String(this.o.ctrlLossTmoS)],
            { timeoutMs: within(left, 60_000) },
          );
          if (r.exitCode !== 0) throw new Error(r.stderr.trim());
          return true;
        },
        { timeoutMs: 90_000, intervalMs: 2000 },
      ),
    );
    // Find the controller for our NQN and its namespace block device (data from sysfs).
    const found = await waitFor(
      'the NVMe controller and namespace',
      async () => {
        const r = await h.run(['sh', '-c', 'for c in /sys/class/nvme/nvme*; do [ "$(cat "$c/subsysnqn" 2>/dev/null)" = "$1" ] || continue; echo "${c##*/} $(cat "$c/transport") $(ls -d "$c"/nvme*n* 2>/dev/null | head -n1)"; done', 'find', this.o.nqn]);
        const [ctrl, transport, ns] = r.stdout.trim().split(' ');
        return ctrl && ns ? { ctrl, transport, ns: ns.split('/').pop()! } : undefined;
      },
      { timeoutMs: 30_000 },
    );
    if (found.transport !== 'rdma') throw new Error(`controller ${found.ctrl} uses ${found.transport}, not rdma`);
    this.ctrl = found.ctrl;
    // the namespace device node: nvme0n1 for controller nvme0 (ns dirs may be named nvme0c0n1 with multipath)
    return `/dev/${found.ns.replace(/c\d+n/, 'n')}`;
  }

  protected override onStart(): void {
    this.own(
      this.lab.node(this.o.host).stream(['bash', '-c', STATE_POLL, 'nvme-state', this.ctrl], { timeoutMs: 30 * 60_000 }).subscribe({
        next: (l) => {
          const m = /^(\d+[.,]\d+) (\S+)$/.exec(l.text);
          if (!m) return;
          this.state = m[2]!;
          this.states.push({ t: l.at, state: this.state });
          this.emit({ source: 'workload', t: l.at, node: this.o.host, workload: this.name, kind: 'state', state: this.state });
        },
        error: () => undefined,
      }),
    );
  }

  /** TEST HOOK: overwrite part of the namespace's backing file on the target behind the host's back. */
  async corruptNamespace(offsetMiB = 4, lengthKiB = 256): Promise<void> {
    await this.lab.node(this.o.target).run(['dd', 'if=/dev/urandom', `of=${DIR}/ns.img`, 'bs=1k', `seek=${offsetMiB * 1024}`, `count=${lengthKiB}`, 'conv=notrunc', 'status=none']);
  }

  /** TEST HOOK: the target goes away (its port is removed): the host can never reconnect. */
  async removeTarget(): Promise<void> {
    await this.lab.node(this.o.target).run(['sh', '-c', 'rm -f "/sys/kernel/config/nvmet/ports/$2/subsystems/$1"; rmdir "/sys/kernel/config/nvmet/ports/$2"', 'rm-port', this.o.nqn, String(this.portId)]);
  }

  protected override finalState(): Promise<{ words: string; details: Record<string, unknown>; dataErrors: string[] }> {
    const seen = [...new Set(this.states.map((s) => s.state))];
    return Promise.resolve({ words: `controller ${this.ctrl} states: ${seen.join(' → ') || 'unknown'} (now ${this.state})`, details: { controller: this.ctrl, states: this.states }, dataErrors: [] });
  }
}
