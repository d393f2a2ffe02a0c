// RF-04/RF-05 must never pass on a fault that missed the operation it was aimed at.
import { expect } from 'chai';
import { faultInConnect, faultInTeardown, heardBeforeFault } from '../../harness/fault/window.ts';
import type { CmaEvent } from '../../harness/monitor/events.ts';

const cma = (node: string, t: number, event: string, dst: string): CmaEvent => ({ source: 'cma', node, t, point: 'cm_event_handler', event, dst, cmId: 0, fields: {} });

describe('where a fault fell: inside the connect or teardown it was aimed at, or a miss', () => {
  it('RF-04: before the connect started, or after a set-up that had already succeeded, is a miss', () => {
    const w = { connectStartedAt: 1000, setupEndedAt: 3000, setupFailed: false };
    expect(faultInConnect({ ...w, landedAt: 900 }), 'before the connect started').to.equal(false);
    expect(faultInConnect({ ...w, landedAt: 3100 }), 'after the set-up ended').to.equal(false);
    expect(faultInConnect({ ...w, landedAt: 1500 }), 'while connecting').to.equal(true);
    expect(faultInConnect({ ...w, landedAt: 1000 }), 'at the first CM event').to.equal(true);
  });

  it('RF-04: a set-up that failed after the fault was hit by it; one that failed before it was not', () => {
    const w = { connectStartedAt: 1000, setupFailed: true };
    expect(faultInConnect({ ...w, landedAt: 1500, setupEndedAt: 9000 })).to.equal(true);
    expect(faultInConnect({ ...w, landedAt: 1500, setupEndedAt: 1200 }), 'failed before the fault').to.equal(false);
    expect(faultInConnect({ ...w, landedAt: 500, setupEndedAt: 9000 }), 'fault before the connect').to.equal(false);
  });

  it('RF-05: the connection gone after the fault is a hit; gone before it, or no trace of it, is a miss', () => {
    const w = { teardownStartedAt: 1000, landedAt: 1200 };
    expect(faultInTeardown({ ...w, connectionGoneAt: 1500 })).to.equal(true);
    expect(faultInTeardown({ ...w, connectionGoneAt: 1100 }), 'gone before the fault').to.equal(false);
    expect(faultInTeardown({ ...w, connectionGoneAt: undefined }), 'no trace event').to.equal(false);
    expect(faultInTeardown({ teardownStartedAt: 1300, landedAt: 1200, connectionGoneAt: 1500 }), 'before the teardown began').to.equal(false);
  });

  it('RF-04 held: a reply the client heard from the server before the fault is a hold that did not hold', () => {
    const w = { client: 'node-a', serverIp: '192.168.50.2', from: 1000, landedAt: 2000 };
    const before = cma('node-a', 1500, 'CONNECT_RESPONSE', '192.168.50.2:3260');
    expect(heardBeforeFault([before], w), 'a REP before the fault').to.equal(before);
    expect(heardBeforeFault([cma('node-a', 1900, 'ESTABLISHED', '192.168.50.2:4420')], w)?.event, 'established before the fault').to.equal('ESTABLISHED');
    expect(heardBeforeFault([cma('node-a', 1950, 'REJECTED', '192.168.50.2:3260')], w)?.event, 'a REJ before the fault').to.equal('REJECTED');
    expect(heardBeforeFault([cma('node-a', 2300, 'CONNECT_RESPONSE', '192.168.50.2:3260')], w), 'the REP after the fault: held').to.equal(undefined);
    expect(heardBeforeFault([cma('node-a', 900, 'ESTABLISHED', '192.168.50.2:3260')], w), 'an earlier connection').to.equal(undefined);
    expect(heardBeforeFault([cma('node-b', 1500, 'CONNECT_REQUEST', '192.168.50.1:3260')], w), "the server's own event").to.equal(undefined);
    expect(heardBeforeFault([cma('node-a', 1500, 'ESTABLISHED', '192.168.50.3:3260')], w), 'another peer').to.equal(undefined);
    expect(heardBeforeFault([cma('node-a', 1500, 'ADDR_CHANGE', '192.168.50.2:3260')], w), 'not a reply').to.equal(undefined);
  });
});
