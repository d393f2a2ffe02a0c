// lnetctl's YAML, parsed (fixtures written from liblnetconfig.c's format: see test/fixtures/lnet).
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { lnetError, parseNetShow, parsePeerShow, parsePing } from '../../harness/workload/lnet-parse.ts';

const fx = (n: string) => readFileSync(`test/fixtures/lnet/${n}`, 'utf8');

describe('lnetctl output', () => {
  it('a ping that answered: the peer and its NIDs; a failed one: the error, no NIDs', () => {
    expect(parsePing(fx('ping-ok.yaml'))).to.deep.equal({ primaryNid: '192.168.50.2@o2ib', nids: ['192.168.50.2@o2ib'] });
    expect(lnetError(fx('ping-ok.yaml'))).to.equal(undefined);
    expect(parsePing(fx('ping-failed.yaml'))).to.deep.equal({ nids: [] });
    expect(lnetError(fx('ping-failed.yaml'))).to.equal('errno -1: failed to ping 192.168.50.2@o2ib: Input/output error');
  });

  it('net show -v 3: each local NI with its net, status, interfaces and health value', () => {
    expect(parseNetShow(fx('net-show-v3.yaml'))).to.deep.equal([
      { net: 'lo', nid: '0@lo', status: 'up', interfaces: [], health: 0 },
      { net: 'o2ib', nid: '192.168.50.1@o2ib', status: 'up', interfaces: ['bond0'], health: 990 },
    ]);
  });

  it('peer show -v 3: each peer NI with its state and health value', () => {
    expect(parsePeerShow(fx('peer-show-v3.yaml'))).to.deep.equal([{ primaryNid: '192.168.50.2@o2ib', nid: '192.168.50.2@o2ib', state: 'NA', health: 1000 }]);
  });

  it('nothing usable (empty or another document) is nothing, not a crash', () => {
    expect(parseNetShow('')).to.deep.equal([]);
    expect(parsePeerShow('net: []')).to.deep.equal([]);
    expect(parsePing('')).to.deep.equal({ nids: [] });
  });
});
