// RF-03 iSER, recorded twice in the VM lab (Debian 6.1.0-57, both links of the initiator's bond down
// for 3 s). Both runs got RDMA_CM_EVENT_UNREACHABLE on the established iSER connection (cma.c
// cma_netevent_callback: the peer's neighbour entry failed / was flushed). In the first, I/O never
// resumed; in the second a NOP-Out already in flight timed out and iscsid reconnected. The verdict must
// not depend on that luck: actedOnUnreachable fails both, saying how long (if ever) iSER took.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import '../../harness/assert/chai-failover.ts';
import { collectEvidence, type Evidence } from '../../harness/assert/evidence.ts';
import { unreachableOnEstablished } from '../../harness/assert/chai-failover.ts';
import type { CmaEvent, LabEvent } from '../../harness/monitor/events.ts';

function load(name: string, edit: (events: LabEvent[]) => LabEvent[] = (e) => e): Evidence {
  const r = JSON.parse(readFileSync(`test/fixtures/recorded/evidence-iser-rf03-${name}.json`, 'utf8')) as Evidence;
  return collectEvidence({ recording: { ...r.recording, events: edit(r.events) }, faults: r.faults, bonds: r.bonds, connections: r.connections, workloads: r.workloads, allowKernel: r.allowKernel });
}

describe('a ULP must act on UNREACHABLE delivered to its established connection', () => {
  it('the run that hung: UNREACHABLE during the outage, no reaction at all', () => {
    const ev = load('hung');
    const u = unreachableOnEstablished(ev, 'iser');
    expect(u.map((x) => [x.node, x.cmId, Math.round(x.at - ev.faults[0]!.t)])).to.deep.equal([['node-a', 1, 3148]]);
    expect(() => expect(ev).to.have.actedOnUnreachable('iser', { within: 2000 })).to.throw(
      /iser did not act on RDMA_CM_EVENT_UNREACHABLE delivered to its established connection node-a cm\.id=1 at 3148\.1 ms after the fault within 2000 ms: it never reacted/,
    );
  });

  it('the run a NOP-Out saved: UNREACHABLE at link-up, the first reaction 7 s later (a new connection) — the same verdict', () => {
    const ev = load('ping');
    expect(() => expect(ev).to.have.actedOnUnreachable('iser', { within: 2000 })).to.throw(/at 5086\.\d ms after the fault within 2000 ms: its first reaction came 71\d\d ms later \(a new connection \(cm\.id=2 ADDR_RESOLVED\)/);
  });

  it('a ULP that drops the connection at once (as RDS and isert do) passes; one that takes longer than allowed fails', () => {
    const react = (delayMs: number) => (events: LabEvent[]) => {
      const un = events.find((e): e is CmaEvent => e.source === 'cma' && e.event === 'UNREACHABLE')!;
      return [...events, { ...un, t: un.t + delayMs, point: 'cm_disconnect', event: undefined } as unknown as CmaEvent].sort((a, b) => a.t - b.t);
    };
    expect(load('hung', react(40))).to.have.actedOnUnreachable('iser', { within: 2000 });
    expect(() => expect(load('hung', react(2500))).to.have.actedOnUnreachable('iser', { within: 2000 })).to.throw(/first reaction came 2500 ms later \(cm_disconnect of cm\.id=1/);
  });

  // Recorded at 894d73d (RF-01 then RF-03, as in a full certification: the bond back on the other
  // slave): UNREACHABLE at 3286 ms, ADDR_CHANGE to the same id at 3315 ms, whose handler destroyed
  // the QP (cm_qp_destroy) — iSER's ADDR_CHANGE cleanup, not a reaction to UNREACHABLE: the state was
  // already TERMINATING, iSCSI was never told, and I/O never resumed. It used to count as "reacted
  // in 29 ms", and the run's verdict depended on whether rxe happened to log something else.
  it('a reaction that comes only after a later event (ADDR_CHANGE) on the same id is that event\'s, not UNREACHABLE\'s', () => {
    const ev = load('addr-change');
    const [u] = unreachableOnEstablished(ev, 'iser');
    expect(u).to.deep.include({ node: 'node-a', cmId: 9 });
    expect(u!.reaction).to.equal(undefined);
    expect(u!.superseded).to.deep.include({ event: 'ADDR_CHANGE', then: 'cm_qp_destroy of cm.id=9' });
    expect(() => expect(ev).to.have.actedOnUnreachable('iser', { within: 2000 })).to.throw(
      /iser did not act on RDMA_CM_EVENT_UNREACHABLE delivered to its established connection node-a cm\.id=9 at 3286\.\d ms after the fault within 2000 ms: it did not react before the RDMA CM delivered ADDR_CHANGE to that id 29 ms later \(what followed, cm_qp_destroy of cm\.id=9, was that event's handling\)/,
    );
  });

  it('UNREACHABLE on an id that never connected (a connect that failed), or on another connection, is not judged', () => {
    const retarget = (cmId: number, extra: LabEvent[] = []) => (events: LabEvent[]) =>
      [...events.map((e) => (e.source === 'cma' && e.event === 'UNREACHABLE' ? { ...e, cmId } : e)), ...extra].sort((a, b) => a.t - b.t);
    expect(load('hung', retarget(99))).to.have.actedOnUnreachable('iser', { within: 2000 });
    const other = (t: number): CmaEvent => ({ source: 'cma', t, node: 'node-a', point: 'cm_event_handler', cmId: 77, event: 'ESTABLISHED', src: '192.168.50.1:40000', dst: '192.168.77.9:3260', fields: {} });
    const ev = load('hung');
    expect(load('hung', retarget(77, [other(ev.faults[0]!.t - 5000)]))).to.have.actedOnUnreachable('iser', { within: 2000 });
    expect(unreachableOnEstablished(ev, 'nfs')).to.deep.equal([]);
  });
});
