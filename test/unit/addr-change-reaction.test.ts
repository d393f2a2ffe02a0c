// A server side whose own bond changed its address gets ADDR_CHANGE on its connections (cma.c
// cma_netdev_change) and must drop them: it cannot reconnect them, and a connection it keeps stalls
// until the client's own timers notice (RF-07 NFS on 6.1: svcrdma ignores the event, and the client
// got back at ~16 s in some runs and never within the bound in others — a verdict that followed a
// race). actedOnAddrChange judges the event: the first reaction on that id, in time.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import '../../harness/assert/chai-failover.ts';
import { cmEventOnEstablished } from '../../harness/assert/chai-failover.ts';
import { collectEvidence, type Evidence } from '../../harness/assert/evidence.ts';
import type { CmaEvent, LabEvent } from '../../harness/monitor/events.ts';
import { parseCmIds } from '../../harness/fabric/rdma.ts';

function load(file: string, edit: (events: LabEvent[]) => LabEvent[] = (e) => e): Evidence {
  const r = JSON.parse(readFileSync(`test/fixtures/recorded/${file}.json`, 'utf8')) as Evidence;
  return collectEvidence({ recording: { ...r.recording, events: edit(r.events) }, faults: r.faults, bonds: r.bonds, connections: r.connections, workloads: r.workloads, allowKernel: r.allowKernel });
}

// Recorded (RDS, node-a's active slave lost): ADDR_CHANGE to node-a's established cm.id=13 at
// 63.4 ms, rds_conn_drop's rdma_disconnect 0.6 ms later, then a new connection to the same peer.
const RDS = 'evidence-rds-client-failover';
const isA13 = (e: LabEvent) => e.source === 'cma' && e.node === 'node-a' && (e).cmId === 13;
const addrChangeAt = (events: LabEvent[]) => events.find((e): e is CmaEvent => isA13(e) && (e as CmaEvent).event === 'ADDR_CHANGE')!.t;

/** RDS as svcrdma behaves: the event is delivered, and nothing happens to the connection. */
const ignored = (events: LabEvent[]) => {
  const at = addrChangeAt(events);
  return events.filter((e) => !(e.t > at && e.source === 'cma' && e.node === 'node-a' && (isA13(e) || (e).event === 'ADDR_RESOLVED' || (e).point === 'cm_id_destroy')));
};

describe('a ULP must act on ADDR_CHANGE delivered to its established connection', () => {
  it('RDS drops the connection at once: judged, and passes', () => {
    const ev = load(RDS);
    const u = cmEventOnEstablished(ev, 'rds', 'ADDR_CHANGE');
    expect(u.map((x) => [x.node, x.cmId, Math.round(x.at - ev.faults[0]!.t), x.reaction?.what])).to.deep.equal([['node-a', 13, 63, 'cm_disconnect of cm.id=13']]);
    expect(ev).to.have.actedOnAddrChange('rds', { within: 2000 });
  });

  it('a ULP that ignores the event (svcrdma on 6.1) fails, whatever the I/O did afterwards', () => {
    expect(() => expect(load(RDS, ignored)).to.have.actedOnAddrChange('rds', { within: 2000, why: 'In this run I/O resumed anyway.' })).to.throw(
      /rds did not act on RDMA_CM_EVENT_ADDR_CHANGE delivered to its established connection node-a cm\.id=13 at 63\.\d ms after the fault within 2000 ms: it never reacted while the test recorded\nIn this run I\/O resumed anyway\./,
    );
  });

  it('the peer\'s disconnect 15 s later is not a reaction: what the ULP did after it was that event\'s handling', () => {
    const late = (events: LabEvent[]) => {
      const at = addrChangeAt(events);
      const base = events.find((e): e is CmaEvent => isA13(e) && (e as CmaEvent).event === 'ADDR_CHANGE')!;
      const later: CmaEvent[] = [
        { ...base, t: at + 15_400, event: 'DISCONNECTED' },
        { ...base, t: at + 15_401, point: 'cm_disconnect', event: undefined },
      ];
      return [...ignored(events), ...later].sort((a, b) => a.t - b.t);
    };
    const [u] = cmEventOnEstablished(load(RDS, late), 'rds', 'ADDR_CHANGE');
    expect(u!.superseded).to.deep.include({ event: 'DISCONNECTED', then: 'cm_disconnect of cm.id=13' });
    expect(() => expect(load(RDS, late)).to.have.actedOnAddrChange('rds', { within: 2000 })).to.throw(
      /it did not react before the RDMA CM delivered DISCONNECTED to that id 15400 ms later \(what followed, cm_disconnect of cm\.id=13, was that event's handling\)/,
    );
  });

  it('a reaction later than the bound fails, with how long it took', () => {
    const slow = (events: LabEvent[]) => {
      const at = addrChangeAt(events);
      return events.map((e) => (isA13(e) && e.t > at ? { ...e, t: e.t + 2500 } : e)).filter((e) => !(e.source === 'cma' && e.node === 'node-a' && (e).event === 'ADDR_RESOLVED' && e.t > at)).sort((a, b) => a.t - b.t);
    };
    expect(() => expect(load(RDS, slow)).to.have.actedOnAddrChange('rds', { within: 2000 })).to.throw(/its first reaction came 250\d ms later \(cm_disconnect of cm\.id=13/);
  });

  // Recorded at 38cfa1c (RF-07 NFS, the full run): ADDR_CHANGE to the server's cm.id=24 at 140.7 ms;
  // svcrdma does nothing; at 2361 ms "rdma_rxe: qp#31 Failed allocating skb" (the QP's retransmission
  // named the GID slot the failover removed) and 9 ms later svcrdma tears the connection down — the QP
  // error's handling, counted as "a reaction 2230 ms later" then. (rdma res prints the id's lqpn;
  // the parser of that commit dropped it, so the fixture carries it from the node's only RC QP, 31.)
  const NFS = 'evidence-nfs-rf07-svcrdma';
  const svcrdma = /nfs did not act on RDMA_CM_EVENT_ADDR_CHANGE delivered to its established connection node-b cm\.id=24 at 140\.7 ms after the fault within 2000 ms: it did not react before the connection's QP failed on its own 22\d\d ms later \(kernel: rdma_rxe: qp#31 Failed allocating skb\); what followed, cm_disconnect of cm\.id=24, was that failure's handling/;

  it('RF-07 NFS (recorded): svcrdma ignores ADDR_CHANGE; the teardown after its QP failed on its own is not a reaction', () => {
    const ev = load(NFS);
    const [u] = cmEventOnEstablished(ev, 'nfs', 'ADDR_CHANGE');
    expect(u).to.deep.include({ node: 'node-b', cmId: 24 });
    expect(u!.reaction).to.equal(undefined);
    expect(() => expect(ev).to.have.actedOnAddrChange('nfs', { within: 2000 })).to.throw(svcrdma);
  });

  it('the same verdict when the failing send comes at once (a reply already due) — no longer a race', () => {
    const soon = (events: LabEvent[]) => {
      const at = events.find((e): e is CmaEvent => e.source === 'cma' && e.event === 'ADDR_CHANGE')!.t;
      const moved = (e: LabEvent) => (e.node === 'node-b' && ((e.source === 'kmsg' && /qp#31/.test(e.text)) || (e.source === 'cma' && e.cmId === 24 && e.t > at + 1000)));
      const failAt = events.find((e) => moved(e) && e.source === 'kmsg')!.t;
      return events.map((e) => (moved(e) ? { ...e, t: e.t - failAt + at + 5 } : e)).sort((a, b) => a.t - b.t);
    };
    expect(() => expect(load(NFS, soon)).to.have.actedOnAddrChange('nfs', { within: 2000 })).to.throw(/it did not react before the connection's QP failed on its own 5 ms later \(kernel: rdma_rxe: qp#31 Failed allocating skb\); what followed, cm_disconnect of cm\.id=24/);
  });

  it('a QP failure of another connection does not count against this one', () => {
    const other = (events: LabEvent[]) => events.map((e) => (e.source === 'kmsg' && /qp#31/.test(e.text) ? { ...e, text: e.text.replace('qp#31', 'qp#32') } : e));
    expect(() => expect(load(NFS, other)).to.have.actedOnAddrChange('nfs', { within: 2000 })).to.throw(/its first reaction came 2230 ms later \(cm_disconnect of cm\.id=24/);
  });

  it('an id the ULP had already let go of (UNREACHABLE first, as in RF-03 iSER) is judged by that event, not again', () => {
    const ev = load('evidence-iser-rf03-addr-change');
    expect(ev.events.some((e) => e.source === 'cma' && (e).event === 'ADDR_CHANGE')).to.equal(true);
    expect(cmEventOnEstablished(ev, 'iser', 'ADDR_CHANGE')).to.deep.equal([]);
    expect(cmEventOnEstablished(ev, 'iser', 'UNREACHABLE')).to.have.length(1);
  });

  it('rdma res gives each connected cm_id its QP number (recorded `rdma -j res show cm_id`)', () => {
    const [cmIds] = readFileSync('test/fixtures/recorded/failover-rping/node-a.res-before.txt', 'utf8').split('\n\n');
    expect(parseCmIds(cmIds!)).to.deep.include.members([{ state: 'CONNECT', ifname: 'rxe0', port: 1, cmIdn: 0, lqpn: 17, qpType: 'RC', ps: 'TCP', pid: 253, comm: 'rping', srcAddr: '192.168.50.1:54795', dstAddr: '192.168.50.2:7400' }]);
  });
});
