// NFS over RDMA (UL-NFS-01): nfsd with the RDMA listener (rdma 20049 in /proc/fs/nfsd/portlist)
// exporting a tmpfs as the NFSv4 root; the client mounts proto=rdma,port=20049,hard; fio with
// verification on a file (O_DIRECT, so reads come from the server, not the client's cache).
import { Subject, type Observable } from 'rxjs';
import { now, sleep, waitFor } from '../clock.ts';
import type { Lab } from '../lab/lab.ts';
import type { WorkloadEvent } from '../monitor/events.ts';
import { ipOf, parseCidr } from '../net/ip.ts';
import type { ConnectionRef } from '../timeline/timeline.ts';
import { runFio, type FioResult } from './fio.ts';
import { loadModules, unloadModules } from './modules.ts';
import { setupOrUndo, type Workload, type WorkloadResult } from './workload.ts';

export interface NfsOptions {
  server: string;
  client: string;
  sizeMiB?: number;
  exportSizeMiB?: number;
  loops?: number;
  /** fio MiB/s cap (honesty tests that corrupt data before fio's check reaches it) */
  rateMiBs?: number;
}

const EXPORT = '/srv/rf-nfs';
const MOUNT = '/mnt/rf-nfs';

/** Server: tmpfs export root, short grace/lease (no 90 s grace period), nfsd with an RDMA listener. */
const SERVER_UP = `set -e
exp=$1; size=$2; net=$3
mkdir -p "$exp"; mountpoint -q "$exp" || mount -t tmpfs -o "size=$size" rf-nfs "$exp"
mountpoint -q /proc/fs/nfsd || mount -t nfsd nfsd /proc/fs/nfsd
mountpoint -q /var/lib/nfs/rpc_pipefs || mount -t rpc_pipefs sunrpc /var/lib/nfs/rpc_pipefs
printf '%s %s(rw,fsid=0,no_root_squash,sync,insecure,no_subtree_check)\\n' "$exp" "$net" > /etc/exports
pgrep -x rpcbind >/dev/null || rpcbind -w
exportfs -ra
pgrep -x rpc.mountd >/dev/null || rpc.mountd
if ! grep -q . /proc/fs/nfsd/threads 2>/dev/null || [ "$(cat /proc/fs/nfsd/threads)" = 0 ]; then
  echo 10 > /proc/fs/nfsd/nfsv4gracetime; echo 10 > /proc/fs/nfsd/nfsv4leasetime
  rpc.nfsd 8
fi
grep -q '^rdma 20049' /proc/fs/nfsd/portlist || echo "rdma 20049" > /proc/fs/nfsd/portlist`;

const SERVER_DOWN = `exp=$1
rpc.nfsd 0 2>/dev/null
exportfs -ua 2>/dev/null
pkill -x rpc.mountd 2>/dev/null
umount "$exp" 2>/dev/null; rmdir "$exp" 2>/dev/null
: > /etc/exports
true`;

export class NfsWorkload implements Workload {
  readonly name = 'nfs';
  readonly ulp = 'nfs' as const;
  private readonly lab: Lab;
  private readonly o: Required<NfsOptions>;
  private readonly extra = new Subject<WorkloadEvent>();
  /** one stable stream (monitors subscribe before I/O starts): fio's events are forwarded into it */
  readonly events$: Observable<WorkloadEvent> = this.extra.asObservable();
  private fio: ReturnType<typeof runFio> | undefined;
  private loaded = new Map<string, string[]>();
  private torn = false;
  done = 0;
  readonly errors: string[] = [];
  mountstats = '';

  constructor(lab: Lab, o: NfsOptions) {
    this.lab = lab;
    this.o = { rateMiBs: 0, sizeMiB: 48, exportSizeMiB: 160, loops: 3, ...o };
  }

  private ip(n: string): string {
    return ipOf(this.lab.spec(n).bonds![0]!.address);
  }

  connection(): ConnectionRef {
    return {
      ulp: 'nfs',
      label: `${this.o.client} → ${this.o.server} (NFSv4.2 over RDMA, port 20049, fio verify)`,
      nodes: [this.o.client, this.o.server],
      ips: [this.ip(this.o.client), this.ip(this.o.server)],
      ports: [20049],
      workload: this.name,
      kmsgDisconnect: ['rpcrdma: .*(disconnect|closed)', 'xprtrdma', 'nfs: server .* not responding'],
      kmsgEstablished: ['nfs: server .* OK', 'rpcrdma: connection to .* on .* established'],
    };
  }

  setup(): Promise<this> {
    return setupOrUndo(this, () => this.bringUp());
  }

  private async bringUp(): Promise<this> {
    const s = this.lab.node(this.o.server);
    const c = this.lab.node(this.o.client);
    this.loaded.set(this.o.server, await loadModules(s, ['nfsd', 'rpcrdma']));
    const cidr = parseCidr(this.lab.spec(this.o.server).bonds![0]!.address);
    const net = cidr.ok ? `${this.ip(this.o.client)}/32` : '*';
    await s.run(['sh', '-c', SERVER_UP, 'nfs-up', EXPORT, `${this.o.exportSizeMiB}m`, net], { timeoutMs: 120_000 });
    this.loaded.set(this.o.client, await loadModules(c, ['rpcrdma', 'nfsv4']));
    await c.run(['mkdir', '-p', MOUNT]);
    await waitFor(
      'the NFS/RDMA mount',
      async () => {
        const r = await c.exec(['mount', '-t', 'nfs', '-o', 'vers=4.2,proto=rdma,port=20049,hard,timeo=600', `${this.ip(this.o.server)}:/`, MOUNT], { timeoutMs: 60_000 });
        if (r.exitCode !== 0) throw new Error(r.stderr.trim());
        return true;
      },
      { timeoutMs: 90_000, intervalMs: 2000 },
    );
    // Prove the mount is RDMA: the transport line of /proc/self/mountstats says "xprt: rdma".
    this.mountstats = (await c.run(['cat', '/proc/self/mountstats'])).stdout;
    const mine = this.mountstats.split(/\n(?=device )/).find((b) => b.includes(` mounted on ${MOUNT} `)) ?? '';
    if (!/\bxprt:\s+rdma\b/.test(mine)) throw new Error(`the NFS mount on ${MOUNT} does not use RDMA:\n${mine.slice(0, 800)}`);
    return this;
  }

  async start(): Promise<void> {
    this.fio = runFio(this.lab.node(this.o.client), this.name, { filename: `${MOUNT}/rf-verify.dat`, sizeMiB: this.o.sizeMiB, loops: this.o.loops, ...(this.o.rateMiBs ? { rateMiBs: this.o.rateMiBs } : {}), bs: '256k', iodepth: 4 }, 30 * 60_000);
    this.fio.events$.subscribe((e) => {
      this.extra.next(e);
      if (e.kind === 'progress' && e.done !== undefined) this.done = e.done;
      if (e.kind === 'error') this.errors.push(typeof e.data?.text === 'string' ? e.data.text : '');
    });
    await sleep(0);
  }

  /** TEST HOOK: overwrite part of the exported file on the server behind the client's back. */
  async corruptExport(offsetMiB = 4, lengthKiB = 256): Promise<void> {
    await this.lab.node(this.o.server).run(['dd', 'if=/dev/urandom', `of=${EXPORT}/rf-verify.dat`, 'bs=1k', `seek=${offsetMiB * 1024}`, `count=${lengthKiB}`, 'conv=notrunc', 'status=none']);
  }

  async finish(timeoutMs = 10 * 60_000): Promise<WorkloadResult> {
    const r: FioResult | undefined = this.fio ? await Promise.race([this.fio.result, sleep(timeoutMs).then(() => undefined)]) : undefined;
    return {
      workload: this.name,
      ulp: 'nfs',
      dataOk: !!r?.ok,
      summary: r ? r.summary : `fio did not finish within ${timeoutMs} ms (a hard mount waits for the server)`,
      bytes: (r?.writtenBytes ?? 0) + (r?.readBytes ?? 0),
      details: { fio: r, finishedAt: now() },
      errors: [...this.errors, ...(r?.verifyErrors ?? [])].slice(0, 40),
    };
  }

  async teardown(): Promise<void> {
    if (this.torn) return;
    this.torn = true;
    this.fio?.stop();
    this.extra.complete();
    const c = this.lab.node(this.o.client);
    await c.settle();
    // A hard mount whose server is gone would hang umount: force, then lazy.
    await c.exec(['umount', '-f', MOUNT], { timeoutMs: 30_000 }).catch(() => undefined);
    await c.exec(['umount', '-l', MOUNT], { timeoutMs: 30_000 }).catch(() => undefined);
    await this.lab.node(this.o.server).exec(['sh', '-c', SERVER_DOWN, 'nfs-down', EXPORT], { timeoutMs: 60_000 }).catch(() => undefined);
    for (const [n, mods] of this.loaded) await unloadModules(this.lab.node(n), mods);
  }
}
