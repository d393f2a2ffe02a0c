// NVMe over Fabrics, RDMA (UL-NVME-01): an nvmet-rdma target through configfs (a file-backed
// namespace on tmpfs), `nvme connect -t rdma --reconnect-delay … --ctrl-loss-tmo …` on the host,
// the controller state as a stream (live / connecting / resetting), fio with verification.
import { Subject, type Observable, type Subscription } from 'rxjs';
import { now, sleep, waitFor } from '../clock.ts';
import type { Lab } from '../lab/lab.ts';
import type { WorkloadEvent } from '../monitor/events.ts';
import { ipOf } from '../net/ip.ts';
import type { ConnectionRef } from '../timeline/timeline.ts';
import { runFio, type FioResult } from './fio.ts';
import { loadModules, unloadModules } from './modules.ts';
import { setupOrUndo, type Workload, type WorkloadResult } from './workload.ts';

export interface NvmeOptions {
  target: string;
  host: string;
  sizeMiB?: number;
  loops?: number;
  reconnectDelayS?: number;
  ctrlLossTmoS?: number;
  nqn?: string;
  /** fio MiB/s cap (honesty tests that corrupt data before fio's check reaches it) */
  rateMiBs?: number;
}

const CFG = '/sys/kernel/config/nvmet';
const DIR = '/run/rf-nvme';

const TARGET_UP = `set -e
nqn=$1; ip=$2; size=$3; dir=$4; cfg=${CFG}
mkdir -p "$dir"; [ -e "$dir/ns.img" ] || truncate -s "$size" "$dir/ns.img"
mkdir -p "$cfg/subsystems/$nqn"
echo 1 > "$cfg/subsystems/$nqn/attr_allow_any_host"
mkdir -p "$cfg/subsystems/$nqn/namespaces/1"
printf '%s' "$dir/ns.img" > "$cfg/subsystems/$nqn/namespaces/1/device_path"
# the file backend opens with O_DIRECT unless buffered: tmpfs refuses O_DIRECT (EINVAL)
echo 1 > "$cfg/subsystems/$nqn/namespaces/1/buffered_io"
echo 1 > "$cfg/subsystems/$nqn/namespaces/1/enable"
mkdir -p "$cfg/ports/1"
echo ipv4 > "$cfg/ports/1/addr_adrfam"; echo rdma > "$cfg/ports/1/addr_trtype"
echo "$ip" > "$cfg/ports/1/addr_traddr"; echo 4420 > "$cfg/ports/1/addr_trsvcid"
[ -e "$cfg/ports/1/subsystems/$nqn" ] || ln -s "$cfg/subsystems/$nqn" "$cfg/ports/1/subsystems/$nqn"`;

const TARGET_DOWN = `nqn=$1; dir=$2; cfg=${CFG}
rm -f "$cfg/ports/1/subsystems/$nqn"
rmdir "$cfg/ports/1" 2>/dev/null
[ -e "$cfg/subsystems/$nqn/namespaces/1/enable" ] && echo 0 > "$cfg/subsystems/$nqn/namespaces/1/enable"
rmdir "$cfg/subsystems/$nqn/namespaces/1" "$cfg/subsystems/$nqn" 2>/dev/null
rm -rf "$dir"
true`;

/** Prints "EPOCHREALTIME state" whenever the controller's state changes. */
const STATE_POLL = `exec 3<> <(:) # a pipe nobody writes to: read -t on it sleeps without a fork (and without a name in /tmp)
prev=
while :; do
  read -r s < "/sys/class/nvme/$1/state" || s=gone
  [ "$s" != "$prev" ] && echo "$EPOCHREALTIME $s" && prev=$s
  read -t 0.05 -u 3 _
done`;

export class NvmeWorkload implements Workload {
  readonly name = 'nvme';
  readonly ulp = 'nvme' as const;
  private readonly lab: Lab;
  private readonly o: Required<NvmeOptions>;
  private readonly extra = new Subject<WorkloadEvent>();
  /** one stable stream (monitors subscribe before I/O starts): fio's events are forwarded into it */
  readonly events$: Observable<WorkloadEvent> = this.extra.asObservable();
  private fio: ReturnType<typeof runFio> | undefined;
  private stateSub: Subscription | undefined;
  private loaded = new Map<string, string[]>();
  private torn = false;
  ctrl = '';
  device = '';
  state = '';
  done = 0;
  readonly errors: string[] = [];
  readonly states: { t: number; state: string }[] = [];

  constructor(lab: Lab, o: NvmeOptions) {
    this.lab = lab;
    this.o = { rateMiBs: 0, sizeMiB: 48, loops: 3, reconnectDelayS: 1, ctrlLossTmoS: 600, nqn: 'nqn.2024-01.lab.test:rf-nvme', ...o };
  }

  private ip(n: string): string {
    return ipOf(this.lab.spec(n).bonds![0]!.address);
  }

  connection(): ConnectionRef {
    return {
      ulp: 'nvme',
      label: `${this.o.host} → ${this.o.target} (NVMe/RDMA ${this.o.nqn}, reconnect-delay ${this.o.reconnectDelayS} s, fio verify on ${this.device || 'the namespace'})`,
      nodes: [this.o.host, this.o.target],
      ips: [this.ip(this.o.host), this.ip(this.o.target)],
      ports: [4420],
      workload: this.name,
      kmsgDisconnect: ['nvme nvme\\d+: (starting error recovery|Reconnecting|RECV for|I/O .* timeout)', 'nvmet_rdma: .*(disconnect|error)'],
      kmsgEstablished: ['nvme nvme\\d+: Successfully reconnected'],
    };
  }

  setup(): Promise<this> {
    return setupOrUndo(this, () => this.bringUp());
  }

  private async bringUp(): Promise<this> {
    const t = this.lab.node(this.o.target);
    const h = this.lab.node(this.o.host);
    this.loaded.set(this.o.target, await loadModules(t, ['nvmet', 'nvmet_rdma']));
    await t.run(['sh', '-c', TARGET_UP, 'nvmet-up', this.o.nqn, this.ip(this.o.target), String((this.o.sizeMiB + 8) * 2 ** 20), DIR], { timeoutMs: 60_000 });
    this.loaded.set(this.o.host, await loadModules(h, ['nvme_rdma']));
    await waitFor(
      'nvme connect over RDMA',
      async () => {
        const r = await h.exec(
          ['nvme', 'connect', '-t', 'rdma', '-a', this.ip(this.o.target), '-s', '4420', '-n', this.o.nqn, '--reconnect-delay', String(this.o.reconnectDelayS), '--ctrl-loss-tmo', String(this.o.ctrlLossTmoS)],
          { timeoutMs: 60_000 },
        );
        if (r.exitCode !== 0) throw new Error(r.stderr.trim());
        return true;
      },
      { timeoutMs: 90_000, intervalMs: 2000 },
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
    this.device = `/dev/${found.ns.replace(/c\d+n/, 'n')}`;
    return this;
  }

  async start(): Promise<void> {
    const h = this.lab.node(this.o.host);
    this.stateSub = h.stream(['bash', '-c', STATE_POLL, 'nvme-state', this.ctrl], { timeoutMs: 30 * 60_000 }).subscribe({
      next: (l) => {
        const m = /^(\d+[.,]\d+) (\S+)$/.exec(l.text);
        if (!m) return;
        this.state = m[2]!;
        this.states.push({ t: l.at, state: this.state });
        this.extra.next({ source: 'workload', t: l.at, node: this.o.host, workload: this.name, kind: 'state', state: this.state });
      },
      error: () => undefined,
    });
    this.fio = runFio(h, this.name, { filename: this.device, sizeMiB: this.o.sizeMiB, loops: this.o.loops, ...(this.o.rateMiBs ? { rateMiBs: this.o.rateMiBs } : {}) }, 30 * 60_000);
    this.fio.events$.subscribe((e) => {
      this.extra.next(e);
      if (e.kind === 'progress' && e.done !== undefined) this.done = e.done;
      if (e.kind === 'error') this.errors.push(typeof e.data?.text === 'string' ? e.data.text : '');
    });
    await sleep(0);
  }

  /** TEST HOOK: overwrite part of the namespace's backing file on the target behind the host's back. */
  async corruptNamespace(offsetMiB = 4, lengthKiB = 256): Promise<void> {
    await this.lab.node(this.o.target).run(['dd', 'if=/dev/urandom', `of=${DIR}/ns.img`, 'bs=1k', `seek=${offsetMiB * 1024}`, `count=${lengthKiB}`, 'conv=notrunc', 'status=none']);
  }

  /** TEST HOOK: the target goes away (its port is removed): the host can never reconnect. */
  async removeTarget(): Promise<void> {
    await this.lab.node(this.o.target).run(['sh', '-c', 'rm -f "/sys/kernel/config/nvmet/ports/1/subsystems/$1"; rmdir /sys/kernel/config/nvmet/ports/1', 'rm-port', this.o.nqn]);
  }

  async finish(timeoutMs = 10 * 60_000): Promise<WorkloadResult> {
    const r: FioResult | undefined = this.fio ? await Promise.race([this.fio.result, sleep(timeoutMs).then(() => undefined)]) : undefined;
    const seen = [...new Set(this.states.map((s) => s.state))];
    return {
      workload: this.name,
      ulp: 'nvme',
      dataOk: !!r?.ok,
      summary: `${r ? r.summary : `fio did not finish within ${timeoutMs} ms`}; controller ${this.ctrl} states: ${seen.join(' → ') || 'unknown'} (now ${this.state})`,
      bytes: (r?.writtenBytes ?? 0) + (r?.readBytes ?? 0),
      details: { fio: r, controller: this.ctrl, states: this.states, finishedAt: now() },
      errors: [...this.errors, ...(r?.verifyErrors ?? [])].slice(0, 40),
    };
  }

  async teardown(): Promise<void> {
    if (this.torn) return;
    this.torn = true;
    this.fio?.stop();
    this.stateSub?.unsubscribe();
    this.extra.complete();
    const h = this.lab.node(this.o.host);
    await h.settle();
    await h.exec(['nvme', 'disconnect', '-n', this.o.nqn], { timeoutMs: 60_000 }).catch(() => undefined);
    await this.lab.node(this.o.target).exec(['sh', '-c', TARGET_DOWN, 'nvmet-down', this.o.nqn, DIR], { timeoutMs: 60_000 }).catch(() => undefined);
    for (const [n, mods] of this.loaded) await unloadModules(this.lab.node(n), mods);
  }
}
