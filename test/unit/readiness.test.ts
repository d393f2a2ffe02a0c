// The check before each test reads a bond in one round trip (recorded in the VM lab: rxe over
// bond0, 6.1). Each way a lab can be unfit for the next test must be caught from that output.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { bondReadinessProblem, defaultGidLost, parseBondReadiness } from '../../harness/fabric/fabric.ts';

const RECORDED = readFileSync('test/fixtures/recorded/bond-readiness-rxe.txt', 'utf8');
const SLAVES = ['eth0', 'eth1'];
const edit = (from: RegExp, to: string) => {
  expect(RECORDED).to.match(from); // the edit must change something
  return parseBondReadiness('bond0', RECORDED.replace(from, to));
};

describe('bond readiness before a test (one round trip)', () => {
  it('the recorded healthy bond is fit, with its GID 0 there', () => {
    const r = parseBondReadiness('bond0', RECORDED);
    expect(r.bond.slaves).to.deep.equal(SLAVES);
    expect([...r.carriers]).to.deep.equal([['eth0', '1'], ['eth1', '1']]);
    expect(r.links.map((l) => `${l.ifname}/${l.port} ${l.state} ${l.netdev}`)).to.deep.equal(['rxe0/1 ACTIVE bond0']);
    expect(bondReadinessProblem(r, SLAVES)).to.equal(true);
    expect(defaultGidLost(r)).to.equal(false);
  });

  it('a missing bond, a stray primary, a lost slave, a bond down', () => {
    expect(bondReadinessProblem(parseBondReadiness('bond0', ''), SLAVES)).to.equal('bond0 is missing');
    expect(bondReadinessProblem(edit(/^bonding\.primary=$/m, 'bonding.primary=eth1'), SLAVES)).to.equal(`bond0's primary is "eth1", the topology's is ""`);
    expect(bondReadinessProblem(parseBondReadiness('bond0', RECORDED), SLAVES, 'eth0')).to.match(/primary is "", the topology's is "eth0"/);
    expect(bondReadinessProblem(edit(/^bonding\.slaves=.*$/m, 'bonding.slaves=eth0'), SLAVES)).to.match(/lost a slave \(eth0\)/);
    expect(bondReadinessProblem(edit(/^bonding\.mii_status=up$/m, 'bonding.mii_status=down'), SLAVES)).to.equal('bond0 is down');
  });

  it('a slave without carrier, or whose carrier cannot be read', () => {
    expect(bondReadinessProblem(edit(/^carrier\.eth1=1$/m, 'carrier.eth1=0'), SLAVES)).to.equal('a slave of bond0 has no carrier (eth0=1 eth1=0)');
    expect(bondReadinessProblem(edit(/^carrier\.eth0=1\n/m, ''), SLAVES)).to.match(/no carrier \(eth0=x eth1=1\)/);
  });

  it('no RDMA port on the bond, or one not ACTIVE', () => {
    expect(bondReadinessProblem(edit(/^rdmajson=.*$/m, 'rdmajson='), SLAVES)).to.equal('RDMA port on bond0 not ACTIVE');
    expect(bondReadinessProblem(edit(/"state":"ACTIVE"/, '"state":"DOWN"'), SLAVES)).to.equal('RDMA port on bond0 not ACTIVE');
  });

  it('rxe lost its default GID (zeros, or unreadable): the bond is fit but GID 0 must be restored', () => {
    const zeros = edit(/^gid0\.rxe0\/ports\/1=.*$/m, 'gid0.rxe0/ports/1=0000:0000:0000:0000:0000:0000:0000:0000');
    expect(bondReadinessProblem(zeros, SLAVES)).to.equal(true);
    expect(defaultGidLost(zeros)).to.equal(true);
    expect(defaultGidLost(edit(/^gid0\.rxe0\/ports\/1=.*$/m, 'gid0.rxe0/ports/1=missing'))).to.equal(true);
  });

  it("siw whose GID still carries the bond's old MAC is unfit; with the bond's MAC it is fit", () => {
    const siw = (gid: string) => edit(/^rdmajson=.*$/m, 'rdmajson=[{"ifindex":3,"ifname":"siw0","port":1,"state":"ACTIVE","physical_state":"LINK_UP","netdev":"bond0"}]\ngid0.siw0/ports/1=' + gid);
    expect(bondReadinessProblem(siw('5254:e7ad:0001:0000:0000:0000:0000:0000'), SLAVES)).to.equal(true);
    expect(bondReadinessProblem(siw('5254:e7ad:0101:0000:0000:0000:0000:0000'), SLAVES)).to.match(/^siw0 still has the GID of 52:54:e7:ad:01:01 while bond0 is 52:54:e7:ad:00:01/);
  });
});
