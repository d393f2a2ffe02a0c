// NFS over RDMA (UL-NFS-01): nfsd with the RDMA listener (rdma 20049 in /proc/fs/nfsd/portlist)
// exporting a tmpfs of its own; the client mounts proto=rdma,port=20049,hard; fio with verification
// on a file (O_DIRECT, so reads come from the server, not the client's cache).
// It changes nothing it did not make: the export goes straight into the kernel's table (exportfs -o
// CLIENT:PATH, never /etc/exports), and nfsd, mountd and rpcbind are started — and later stopped —
// only when they were not running; a user's NFS server keeps running with its exports untouched
// (and is used only if it already listens on RDMA: a listener cannot be taken back from it).
import { randomUUID } from 'node:crypto';
import { waitFor, within } from '../clock.ts';
import type { Lab } from '../lab/lab.ts';
import type { ConnectionRef } from '../timeline/timeline.ts';
import { BlockStorageWorkload, LabPreconditionError, type BlockStorageOptions } from './block-storage.ts';
import { mountBlock, parseNfsMountStats, rpcTrouble } from './nfs-stats.ts';
import type { FioResult } from './fio.ts';
import { UNMOUNT_IF_MOUNTED } from './undo.ts';

export interface NfsOptions extends BlockStorageOptions {
  server: string;
  client: string;
  exportSizeMiB?: number;
  /** the RPC timeout of the mount, deciseconds (NFS's default for RDMA and TCP: 600) */
  timeoDs?: number;
  /** soft mount with this many retransmissions: the client gives up (EIO) instead of retrying forever */
  softRetrans?: number;
}

const EXPORT = '/srv/rf-nfs';
const MOUNT = '/mnt/rf-nfs';
const NFSD = '/proc/fs/nfsd';
// Idempotent (see UNMOUNT_IF_MOUNTED): done when exportfs unexports it, or when the path is not
// exported at all any more (the export was journaled but never made). $1 client:path, $2 path.
export const UNEXPORT = 'exportfs -u "$1" 2>/dev/null || ! exportfs 2>/dev/null | grep -q "^$2\\([[:space:]]\\|$\\)"';

/** Starts nfsd with a short grace/lease (no 90 s grace period); its undo restores the old values. */
const NFSD_UP = `echo 10 > ${NFSD}/nfsv4gracetime; echo 10 > ${NFSD}/nfsv4leasetime; rpc.nfsd 8`;
const NFSD_DOWN = `rpc.nfsd 0 && echo "$1" > ${NFSD}/nfsv4gracetime && echo "$2" > ${NFSD}/nfsv4leasetime`;

/** What the server has now: nfsd threads, portlist, grace/lease, mounts, and fsid=0 exports. */
const SERVER_STATE = `m=0; mountpoint -q ${NFSD} && m=1
echo "nfsdfs=$m"
echo "pipefs=$(mountpoint -q /var/lib/nfs/rpc_pipefs && echo 1 || echo 0)"
echo "threads=$(cat ${NFSD}/threads 2>/dev/null || echo 0)"
echo "grace=$(cat ${NFSD}/nfsv4gracetime 2>/dev/null)"
echo "lease=$(cat ${NFSD}/nfsv4leasetime 2>/dev/null)"
grep -q '^rdma 20049' ${NFSD}/portlist 2>/dev/null && echo "rdma=1" || echo "rdma=0"
awk '/fsid=0[,)]/ { print "root=" $1 } { n++ } END { print "exports=" n+0 }' /var/lib/nfs/etab 2>/dev/null; true`;

export class NfsWorkload extends BlockStorageWorkload {
  readonly name = 'nfs';
  readonly ulp = 'nfs' as const;
  protected readonly client: string;
  private readonly o: Required<Omit<NfsOptions, keyof BlockStorageOptions | 'softRetrans'>> & Pick<NfsOptions, 'softRetrans'>;
  mountstats = '';

  constructor(lab: Lab, o: NfsOptions) {
    super(lab, 'nfs', o);
    this.o = { exportSizeMiB: 160, timeoDs: 600, ...o };
    this.client = o.client;
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

  protected override fioSettings() {
    return { bs: '256k', iodepth: 4 };
  }

  private async serverState(): Promise<Map<string, string[]>> {
    const r = await this.lab.node(this.o.server).run(['sh', '-c', SERVER_STATE, 'nfs-server-state'], { timeoutMs: 15_000 });
    const kv = new Map<string, string[]>();
    for (const l of r.stdout.split('\n').filter((x) => x.includes('='))) {
      const k = l.slice(0, l.indexOf('='));
      kv.set(k, [...(kv.get(k) ?? []), l.slice(l.indexOf('=') + 1)]);
    }
    return kv;
  }

  protected async bringUp(): Promise<string> {
    const s = this.lab.node(this.o.server);
    const c = this.lab.node(this.o.client);
    const client = `${this.ip(this.o.client)}/32`;
    let ownRoot = false;
    // The server and the client's modules at once (the client waits for nothing until it mounts).
    await this.bothSides(
      (async () => {
        await this.modules(s, ['nfsd', 'rpcrdma']);
        let st = await this.serverState();
        // The NFSv4 namespace is the server's: a server that exports nothing gets the harness's tmpfs as
        // its v4 root (fsid=0: the pseudo-root would have to export "/", and an overlay root — the VM
        // lab's — cannot be exported). A server that exports something keeps its namespace: ours is
        // added under the pseudo-root, or the test cannot run there.
        const roots = (st.get('root') ?? []).filter((r) => !EXPORT.startsWith(r));
        if (roots.length) throw new LabPreconditionError(`the NFS server already exports an NFSv4 root (fsid=0) at ${roots.join(', ')}: the harness's export ${EXPORT} would not be reachable under it, and changing the user's exports is not the harness's to do`);
        ownRoot = (st.get('exports')?.[0] ?? '0') === '0';

        await this.undo.change({ node: s.name, what: `unmount and remove ${EXPORT}`, kind: 'argv', argv: ['sh', '-c', 'umount "$1" 2>/dev/null; [ ! -e "$1" ] || rmdir "$1"', 'rm-export', EXPORT], persists: true }, () =>
          s.run(['sh', '-c', 'mkdir -p "$1" && mount -t tmpfs -o "size=$2" rf-nfs "$1"', 'mk-export', EXPORT, `${this.o.exportSizeMiB}m`]),
        );
        if (st.get('nfsdfs')?.[0] !== '1') await this.undo.change({ node: s.name, what: `unmount ${NFSD}`, kind: 'argv', argv: ['sh', '-c', UNMOUNT_IF_MOUNTED, 'unmount', NFSD] }, () => s.run(['mount', '-t', 'nfsd', 'nfsd', NFSD]));
        if (st.get('pipefs')?.[0] !== '1') {
          await this.undo.change({ node: s.name, what: 'unmount rpc_pipefs', kind: 'argv', argv: ['sh', '-c', UNMOUNT_IF_MOUNTED, 'unmount', '/var/lib/nfs/rpc_pipefs'] }, () => s.run(['mount', '-t', 'rpc_pipefs', 'sunrpc', '/var/lib/nfs/rpc_pipefs']));
        }
        await this.daemon(s, 'rpcbind', ['rpcbind', '-f', '-w']);
        // Straight into the kernel's export table: /etc/exports is the user's file.
        const fsid = randomUUID();
        await this.undo.change({ node: s.name, what: `unexport ${client}:${EXPORT}`, kind: 'argv', argv: ['sh', '-c', UNEXPORT, 'unexport', `${client}:${EXPORT}`, EXPORT] }, () =>
          s.run(['exportfs', '-o', `rw,no_root_squash,sync,insecure,no_subtree_check,fsid=${ownRoot ? '0' : fsid}`, `${client}:${EXPORT}`]),
        );
        await this.daemon(s, 'rpc.mountd', ['rpc.mountd', '-F']);
        st = await this.serverState();
        const running = (st.get('threads')?.[0] ?? '0') !== '0';
        const rdma = st.get('rdma')?.[0] === '1';
        // nfsd cannot drop one listener (6.1 write_ports has no delete): an RDMA listener added to a
        // user's running nfsd would stay until it restarts. Only an nfsd the harness starts gets one.
        if (running && !rdma) throw new LabPreconditionError('nfsd is running without an RDMA listener: adding one (rdma 20049) could not be undone — nfsd has no way to remove a listener short of stopping it — so the harness leaves it alone');
        if (!running) {
          await this.undo.change({ node: s.name, what: 'stop the nfsd the harness started (and its RDMA listener), restore its grace and lease times', kind: 'argv', argv: ['sh', '-c', NFSD_DOWN, 'nfsd-down', st.get('grace')?.[0] ?? '90', st.get('lease')?.[0] ?? '90'] }, () =>
            s.run(['sh', '-c', `${NFSD_UP} && echo "rdma 20049" > ${NFSD}/portlist`, 'nfsd-rdma-port'], { timeoutMs: 60_000 }),
          );
        }
      })(),
      this.modules(c, ['rpcrdma', 'nfsv4']),
    );
    await this.undo.change({ node: c.name, what: `unmount and remove ${MOUNT}`, kind: 'argv', argv: ['sh', '-c', 'umount -f "$1" 2>/dev/null; umount -l "$1" 2>/dev/null; [ ! -e "$1" ] || rmdir "$1"', 'rm-mount', MOUNT], persists: true }, async () => {
      await c.run(['mkdir', '-p', MOUNT]);
      const mounted = await waitFor(
        'the NFS/RDMA mount',
        async (left) => {
          const r = await c.exec(['mount', '-t', 'nfs', '-o', `vers=4.2,proto=rdma,port=20049,${this.o.softRetrans !== undefined ? `soft,retrans=${this.o.softRetrans}` : 'hard'},timeo=${this.o.timeoDs}`, `${this.ip(this.o.server)}:${ownRoot ? '/' : EXPORT}`, MOUNT], { timeoutMs: within(left, 60_000) });
          if (r.exitCode === 0) return { ok: true as const };
          // not worth retrying: the pseudo-root cannot reach our export on this server
          if (!ownRoot && /No such file or directory/.test(r.stderr)) return { skip: r.stderr.trim() };
          throw new Error(r.stderr.trim());
        },
        { timeoutMs: 90_000, intervalMs: 2000 },
      );
      if ('skip' in mounted) {
        throw new LabPreconditionError(`the NFS server already exports other paths, so the harness's export must go under its NFSv4 pseudo-root, and that cannot reach ${EXPORT} (is the server's root filesystem exportable? an overlay root is not): ${mounted.skip}`);
      }
    });
    // Prove the mount is RDMA: the transport line of /proc/self/mountstats says "xprt: rdma".
    this.mountstats = (await c.run(['cat', '/proc/self/mountstats'])).stdout;
    const mine = mountBlock(this.mountstats, MOUNT);
    if (!/\bxprt:\s+rdma\b/.test(mine)) throw new Error(`the NFS mount on ${MOUNT} does not use RDMA:\n${mine.slice(0, 800)}`);
    return `${MOUNT}/rf-verify.dat`;
  }

  /** The client's RPC account when the I/O ended (in the details): which RPCs failed. Said in the
   *  summary after a short write, its cause; otherwise RPCs the client retried (NFS4ERR_DELAY, an
   *  -EAGAIN marshal for want of MRs) are routine. */
  protected override async finalState(passes: readonly FioResult[]): Promise<{ words: string; details: Record<string, unknown>; dataErrors: string[] }> {
    const r = await this.lab.node(this.client).run(['cat', '/proc/self/mountstats'], { timeoutMs: 10_000 });
    const stats = parseNfsMountStats(r.stdout, MOUNT);
    const short = passes.some((p) => p.shortWrites > 0);
    return { words: short && stats ? rpcTrouble(stats) : '', details: stats ? { rpcStats: stats } : {}, dataErrors: [] };
  }

  /** TEST HOOK: overwrite part of the exported file on the server behind the client's back. */
  async corruptExport(offsetMiB = 4, lengthKiB = 256): Promise<void> {
    await this.lab.node(this.o.server).run(['dd', 'if=/dev/urandom', `of=${EXPORT}/rf-verify.dat`, 'bs=1k', `seek=${offsetMiB * 1024}`, `count=${lengthKiB}`, 'conv=notrunc', 'status=none']);
  }
}
