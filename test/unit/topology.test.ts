// Topology validation: every bad fixture yields exactly the findings written at its end,
// at the exact file:line:col; the shipped example topologies validate clean.
import { expect } from 'chai';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkTopologyText, loadTopology } from '../../harness/topology/load.ts';
import { TopologyError } from '../../harness/topology/issues.ts';

const FIX = 'test/fixtures/topologies';

function expectations(text: string): string[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('# expect: '))
    .map((l) => l.slice('# expect: '.length));
}

function findings(file: string): string[] {
  const { issues } = checkTopologyText(readFileSync(file, 'utf8'), file);
  return issues.map((i) => `${i.line}:${i.col}: ${i.severity}: ${i.path ? `${i.path}: ` : ''}${i.message}`);
}

for (const dir of ['bad', 'warn']) {
  describe(`topology fixtures: ${dir}/`, () => {
    const files = readdirSync(join(FIX, dir)).filter((f) => f.endsWith('.yaml')).sort();
    if (dir === 'bad') it('has at least 20 bad topologies', () => expect(files.length).to.be.at.least(20));
    for (const f of files) {
      it(f, () => {
        const path = join(FIX, dir, f);
        const want = expectations(readFileSync(path, 'utf8'));
        expect(want, 'fixture declares its findings').to.not.be.empty;
        expect(findings(path).sort()).to.deep.equal(want.sort());
      });
    }
  });
}

describe('example topologies', () => {
  for (const f of readdirSync('topologies').filter((x) => x.endsWith('.yaml'))) {
    it(`${f} validates clean (no errors, no warnings)`, () => {
      expect(findings(join('topologies', f))).to.deep.equal([]);
    });
  }

  it('loadTopology throws a TopologyError that lists every error with its position', () => {
    const err = (() => {
      try {
        loadTopology(join(FIX, 'bad', '19-ipoib-in-vm-lab.yaml'));
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).to.be.instanceOf(TopologyError);
    expect((err as Error).message).to.match(/2 errors/);
    expect((err as Error).message).to.include('19-ipoib-in-vm-lab.yaml:9:32: error:');
  });

  it('records a hash of the file for reports', () => {
    const t = loadTopology('topologies/vm-rxe.yaml');
    expect(t.sha256).to.match(/^[0-9a-f]{64}$/);
  });
});
