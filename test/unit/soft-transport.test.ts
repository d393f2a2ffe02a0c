// The second soft transport (siw): the topology derivation of the matrix's transport axis, the
// transport requirement that skips RDS on iWARP, the matrix's ULP-vs-transport diagnosis, and the
// parsing that picks the packages siw.ko is built from. The build itself runs in the siw lab test.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { checkTopologyText, loadTopology } from '../../harness/topology/load.ts';
import { parseTransports, topologyYaml, transportsOf, withTransport } from '../../harness/topology/transport.ts';
import { unsupportedHere } from '../../harness/fixture/requirements.ts';
import { iser } from '../../harness/ulp/iser.ts';
import { rds } from '../../harness/ulp/rds.ts';
import { srp } from '../../harness/ulp/srp.ts';
import { allUlps } from '../../harness/ulp/registry.ts';
import { diagnose, type Matrix, type MatrixCell } from '../../harness/report/matrix.ts';
import { headersPackages, sourceSeries } from '../../harness/vmlab/siw.ts';
import { macOfIwarpGid, softRdma } from '../../harness/fabric/fabric.ts';

const rxe = loadTopology('topologies/vm-rxe.yaml');
const siw = loadTopology('topologies/vm-siw.yaml');

describe('soft transport: the matrix axis rxe ↔ siw', () => {
  it('switches every bond, its RDMA device and the lab name, and the result validates clean', () => {
    const t = withTransport(rxe.topology, 'siw', rxe.file);
    expect(t.name).to.equal('vm-siw');
    for (const n of t.nodes) for (const b of n.bonds ?? []) {
      expect(b.slaves.map((s) => s.link)).to.deep.equal(['siw', 'siw']);
      expect(b.rdma).to.deep.equal({ type: 'siw', name: 'siw0' });
      expect(softRdma(b)).to.equal('siw');
    }
    const { issues } = checkTopologyText(topologyYaml(t, 'derived'), 'derived.yaml');
    expect(issues).to.deep.equal([]);
    // the original is untouched
    expect(transportsOf(rxe.topology)).to.deep.equal(['rxe']);
  });

  it('the derived siw topology is the shipped vm-siw.yaml (same bonds, workloads and faults)', () => {
    const t = withTransport(rxe.topology, 'siw', rxe.file);
    const strip = (x: typeof t) => ({ ...x, description: undefined });
    expect(strip(t)).to.deep.equal(strip(siw.topology));
  });

  it('switching to the transport a lab already has changes nothing', () => {
    expect(withTransport(siw.topology, 'siw', siw.file)).to.deep.equal(siw.topology);
    expect(withTransport(siw.topology, 'rxe', siw.file).name).to.equal('vm-rxe');
  });

  it('refuses what it cannot do: unknown transports, real labs', () => {
    expect(() => parseTransports('rxe,iwarp')).to.throw(/--transports takes rxe, siw/);
    expect(parseTransports('siw, rxe,siw')).to.deep.equal(['siw', 'rxe']);
    const real = loadTopology('topologies/roce-2node.yaml');
    expect(() => withTransport(real.topology, 'siw', real.file)).to.throw(/kind: vm/);
  });
});

describe('soft transport: a ULP that cannot run on a transport is SKIPPED with the reason', () => {
  it('RDS: not over iWARP, from the source (rds_ib_add_one)', () => {
    expect(rds.unsupported?.map((r) => r.on)).to.deep.equal([['iwarp']]);
    expect(unsupportedHere(siw.topology, rds.unsupported ?? [])).to.equal(`cannot run over iwarp (siw): ${rds.unsupported?.[0]?.why ?? ""}`);
  });
  it('iSER: not over siw (the portal\'s TCP listener holds the port: rdma_listen -98), but over other iWARP', () => {
    expect(unsupportedHere(siw.topology, iser.unsupported ?? [])).to.match(/^cannot run over iwarp \(siw\): LIO opens the portal's TCP listener first .* EADDRINUSE \(-98\)/);
    // hardware iWARP maps the port through iwpmd: only siw is excluded
    expect(iser.unsupported?.flatMap((r) => r.on)).to.deep.equal(['siw']);
  });
  it('SRP: not over siw (the IPv6-wildcard listener sees IPv4 logins as ::ffff:a.b.c.d, which the RDMA CM cannot place)', () => {
    expect(unsupportedHere(siw.topology, srp.unsupported ?? [])).to.match(/^cannot run over iwarp \(siw\): ib_srpt listens on the IPv6 wildcard only .* rdma_translate_ip\(\)/);
    expect(srp.unsupported?.flatMap((r) => r.on)).to.deep.equal(['siw']);
  });
  it('on the rxe lab: no reason (they run)', () => {
    for (const u of [rds, iser, srp]) expect(unsupportedHere(rxe.topology, u.unsupported ?? []), u.name).to.equal(undefined);
  });
  it('every other ULP runs on every transport unless it says otherwise', () => {
    expect(allUlps().filter((u) => u.unsupported).map((u) => u.name).sort()).to.deep.equal(['iser', 'rds', 'srp']);
  });
});

describe('soft transport: the matrix tells a transport bug from a ULP bug', () => {
  const cols: Matrix['kernels'] = [
    { label: 'a', kernel: 'k1', transport: 'rxe', runId: '1', dir: '', summary: {} as Matrix['kernels'][number]['summary'] },
    { label: 'b', kernel: 'k1', transport: 'siw', runId: '2', dir: '', summary: {} as Matrix['kernels'][number]['summary'] },
  ];
  const c = (status: MatrixCell['status']): MatrixCell => ({ status });
  it('fails on one transport only: the transport\'s', () => {
    expect(diagnose(cols, [c('passed'), c('failed')])).to.equal("k1: fails on siw only: the transport's, not the ULP's");
  });
  it('fails on both: the ULP\'s (or the kernel\'s)', () => {
    expect(diagnose(cols, [c('known-failure'), c('failed')])).to.equal("k1: fails on every transport (rxe, siw): the ULP's or the kernel's, not the transport's");
  });
  it('passes on both, or ran on one only (skipped elsewhere): no diagnosis', () => {
    expect(diagnose(cols, [c('passed'), c('passed')])).to.equal(undefined);
    expect(diagnose(cols, [c('failed'), c('skipped')])).to.equal(undefined);
  });
});

describe('siw.ko: which packages it is built from', () => {
  it('stable: the headers pinned to their version, -common pinned (=), kbuild by candidate (>=)', () => {
    const show = readFileSync('test/fixtures/recorded/apt-show-linux-headers-6.1.0-57-amd64.txt', 'utf8');
    expect(headersPackages(show, 'linux-headers-6.1.0-57-amd64')).to.deep.equal({
      version: '6.1.192-3',
      pkgs: ['linux-headers-6.1.0-57-amd64=6.1.192-3', 'linux-headers-6.1.0-57-common=6.1.192-3', 'linux-kbuild-6.1'],
    });
  });
  it('backports: kbuild named without a version', () => {
    const show = readFileSync('test/fixtures/recorded/apt-show-linux-headers-6.12.95+deb12-amd64.txt', 'utf8');
    expect(headersPackages(show, 'linux-headers-6.12.95+deb12-amd64')).to.deep.equal({
      version: '6.12.95-1~bpo12+1',
      pkgs: ['linux-headers-6.12.95+deb12-amd64=6.12.95-1~bpo12+1', 'linux-headers-6.12.95+deb12-common=6.12.95-1~bpo12+1', 'linux-kbuild-6.12.95+deb12'],
    });
  });
  it('a headers package without kbuild is refused, not half-built', () => {
    expect(() => headersPackages('Package: x\nVersion: 1\nDepends: gcc-12\n', 'x')).to.throw(/does not depend on a linux-kbuild/);
  });
  it('the source series from the release', () => {
    expect(sourceSeries('6.1.0-57-amd64')).to.equal('6.1');
    expect(sourceSeries('6.12.95+deb12-amd64')).to.equal('6.12');
    expect(() => sourceSeries('vmlinuz')).to.throw();
  });
});

describe('siw: the GID it took at creation against the bond\'s MAC now', () => {
  it('reads the MAC out of an iWARP GID as sysfs prints it', () => {
    expect(macOfIwarpGid('5254:42ad:0101:0000:0000:0000:0000:0000\n')).to.equal('52:54:42:ad:01:01');
    expect(macOfIwarpGid('missing')).to.not.match(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
  });
});
