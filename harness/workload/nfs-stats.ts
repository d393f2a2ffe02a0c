// The NFS client's own account of its RPCs (/proc/self/mountstats): per-operation counts with the
// number that ended in an error, and the RPC/RDMA transport's counters. A short O_DIRECT write
// means one of its WRITE RPCs failed: these say which kind of failure it was.

export interface RpcOpStats {
  ops: number;
  trans: number;
  timeouts: number;
  /** RPCs of this operation that ended with an error status (om_error_status) */
  errors: number;
}

export interface NfsMountStats {
  /** the RDMA transport's counters (net/sunrpc/xprtrdma/transport.c xprt_rdma_print_stats) */
  xprt?: { connects: number; failedMarshal: number; badReply: number; line: string };
  ops: Record<string, RpcOpStats>;
}

/** The block of /proc/self/mountstats for the mount on `mountpoint` ('' when there is none). */
export function mountBlock(text: string, mountpoint: string): string {
  return text.split(/\n(?=device )/).find((b) => b.includes(` mounted on ${mountpoint} `)) ?? '';
}

/** The block of /proc/self/mountstats for the mount on `mountpoint`, parsed (6.1's formats). */
export function parseNfsMountStats(text: string, mountpoint: string): NfsMountStats | undefined {
  const block = mountBlock(text, mountpoint);
  if (!block) return undefined;
  const out: NfsMountStats = { ops: {} };
  let inOps = false;
  for (const raw of block.split('\n')) {
    const line = raw.trim();
    const x = /^xprt:\s+rdma\s+(.*)$/.exec(line);
    if (x) {
      // port bind_count connect_count connect_time idle_time sends recvs bad_xids req_u bklog_u
      // read_chunks write_chunks reply_chunks rdma_req rdma_rep pullup fixup hardway failed_marshal bad_reply …
      const n = x[1]!.split(/\s+/).map(Number);
      out.xprt = { connects: n[2] ?? 0, failedMarshal: n[18] ?? 0, badReply: n[19] ?? 0, line };
      continue;
    }
    if (line === 'per-op statistics') {
      inOps = true;
      continue;
    }
    const op = inOps ? /^([A-Z_0-9]+):\s+(\d+(?:\s+\d+){8})$/.exec(line) : null;
    if (op) {
      // ops trans timeouts bytes_sent bytes_recv queue rtt execute errors (net/sunrpc/stats.c)
      const n = op[2]!.split(/\s+/).map(Number);
      out.ops[op[1]!] = { ops: n[0]!, trans: n[1]!, timeouts: n[2]!, errors: n[8]! };
    }
  }
  return out;
}

/** What went wrong in the RPCs, in words ('' when nothing did). */
export function rpcTrouble(s: NfsMountStats): string {
  const failed = Object.entries(s.ops).filter(([, o]) => o.errors > 0).map(([name, o]) => `${name} ${o.errors} of ${o.ops}`);
  const xprt = [s.xprt?.failedMarshal ? `${s.xprt.failedMarshal} failed to marshal` : '', s.xprt?.badReply ? `${s.xprt.badReply} bad repl(ies)` : ''].filter(Boolean);
  if (!failed.length && !xprt.length) return '';
  return `the client's RPCs ended in errors (mountstats): ${[...failed, ...xprt].join(', ')}`;
}
