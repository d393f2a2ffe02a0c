import { expect } from 'chai';
import { parseNfsMountStats, rpcTrouble } from '../../harness/workload/nfs-stats.ts';

// Shaped as 6.1 prints it (fs/nfs/super.c nfs_show_stats, net/sunrpc/stats.c, xprtrdma/transport.c).
const STATS = `device rootfs mounted on / with fstype 9p
device 192.168.50.2:/ mounted on /mnt/rf-nfs with fstype nfs4 statvers=1.1
\topts:\trw,vers=4.2,rsize=1048576,wsize=1048576,hard,proto=rdma,port=20049
\tage:\t12
\tRPC iostats version: 1.1  p/v: 100003/4 (nfs)
\txprt:\trdma 0 0 2 0 0 312 311 0 312 0 0 64 0 1 1 0 0 0 1 0 0 0 0 32 0 0 0
\tper-op statistics
\t        NULL: 1 1 0 44 24 0 0 0 0
\t        READ: 0 0 0 0 0 0 0 0 0
\t       WRITE: 70 71 0 17010688 8400 3 902 910 1
\t      COMMIT: 0 0 0 0 0 0 0 0 0
device 192.168.60.9:/other mounted on /mnt/theirs with fstype nfs4 statvers=1.1
\txprt:\ttcp 0 0 1 0 0 9 9 0 9 0 0 0 0
\tper-op statistics
\t       WRITE: 5 5 0 100 100 0 0 0 3
`;

describe('NFS client RPC statistics (mountstats)', () => {
  it("parses the harness's mount only: the RDMA transport's counters and each operation's errors", () => {
    const s = parseNfsMountStats(STATS, '/mnt/rf-nfs')!;
    expect(s.xprt).to.include({ connects: 2, failedMarshal: 1, badReply: 0 });
    expect(s.ops.WRITE).to.deep.equal({ ops: 70, trans: 71, timeouts: 0, errors: 1 });
    expect(s.ops.READ?.errors).to.equal(0);
    expect(rpcTrouble(s)).to.equal("the client's RPCs ended in errors (mountstats): WRITE 1 of 70, 1 failed to marshal");
  });

  it('a clean run says nothing; a mount not there is undefined', () => {
    const clean = STATS.replace('910 1\n', '910 0\n').replace(' 1 0 0 0 0 32', ' 0 0 0 0 0 32');
    expect(rpcTrouble(parseNfsMountStats(clean, '/mnt/rf-nfs')!)).to.equal('');
    expect(parseNfsMountStats(STATS, '/mnt/none')).to.equal(undefined);
  });
});
