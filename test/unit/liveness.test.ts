// RF-09's verdict rests on each storage ULP's liveness predicate: "did its own timer fire?". Each
// must recognise the kernel's real words (lines recorded in the VM lab) and nothing else — a
// predicate that matched any line would pass RF-09 for a ULP whose timer never fired.
import { expect } from 'chai';
import type { LabEvent } from '../../harness/monitor/events.ts';
import { parseKmsg, parseTrace } from '../../harness/monitor/parse.ts';
import { iser } from '../../harness/ulp/iser.ts';
import { nfs } from '../../harness/ulp/nfs.ts';
import { nvme } from '../../harness/ulp/nvme.ts';
import type { UlpModule } from '../../harness/ulp/ulp.ts';

const SERVER = '192.168.50.2';

/** Does the ULP's predicate say its timer fired (towards SERVER)? */
const fires = (u: UlpModule, e: LabEvent) => u.liveness!.fired(e, SERVER);

function kmsg(text: string): LabEvent {
  const p = parseKmsg(`<6>[ 2006.216530] ${text}`);
  if (!p || !('event' in p)) throw new Error(`not a kernel line: ${text}`);
  return { ...p.event, t: 0, node: 'node-a' };
}

function trace(line: string): LabEvent {
  const p = parseTrace(line);
  if (!p || !('event' in p)) throw new Error(`not a trace line: ${line}`);
  return { ...p.event, t: 0, node: 'node-a' };
}

const CM_DISCONNECT = (dst: string) => `          iscsid-20515   [000] .....  2006.216530: cm_disconnect: cm.id=2 src=192.168.50.1:34018 dst=${dst} tos=0`;

describe('liveness timers (RF-09): each ULP recognises its own timer firing, and nothing else', () => {
  it('iSER: the NOP-Out ping timeout and the connection error it raises', () => {
    expect(fires(iser, kmsg(' connection8:0: ping timeout of 5 secs expired, recv timeout 5, last rx 4295381378, last ping 4295382632, now 4295383936'))).to.equal(true);
    expect(fires(iser, kmsg(' connection8:0: detected conn error (1022)'))).to.equal(true);
    // another connection error (1020: the connection dropped) is not the ping timer
    expect(fires(iser, kmsg(' connection8:0: detected conn error (1020)'))).to.equal(false);
    expect(fires(iser, kmsg('bond0: (slave eth1): making interface the new active one'))).to.equal(false);
  });

  it('NVMe: a keep-alive or command timeout starting error recovery', () => {
    expect(fires(nvme, kmsg('nvme nvme0: starting error recovery'))).to.equal(true);
    expect(fires(nvme, kmsg('nvme nvme0: I/O 12 QID 0 timeout') /* host/rdma.c nvme_rdma_timeout */)).to.equal(true);
    // a QP error is the fault's own effect, not the keep-alive noticing a silent path
    expect(fires(nvme, kmsg('nvme nvme0: SEND for CQE 0x000000009e06fe0d failed with status local QP operation error (2)'))).to.equal(false);
    expect(fires(nvme, kmsg('nvmet: creating nvm controller 1 for subsystem nqn.2014-08.org.rf:rf-nvme'))).to.equal(false);
  });

  it('NFS: the client disconnecting its connection to the server\'s RDMA port (the RPC timeout)', () => {
    expect(fires(nfs, trace(CM_DISCONNECT(`${SERVER}:20049`)))).to.equal(true);
    // another port (iSCSI), another server, or a kernel line is not the RPC timeout
    expect(fires(nfs, trace(CM_DISCONNECT(`${SERVER}:3260`)))).to.equal(false);
    expect(fires(nfs, trace(CM_DISCONNECT('192.168.50.9:20049')))).to.equal(false);
    expect(fires(nfs, kmsg('rpcrdma: connection to 192.168.50.2:20049 closed (-103)'))).to.equal(false);
  });

  it('declares a bound for each, within which RF-09 expects the timer', () => {
    for (const u of [iser, nfs, nvme] as UlpModule[]) expect(u.liveness?.boundMs, u.name).to.be.a('number').and.above(0);
  });
});
