// docs/ci: the GitLab and Jenkins pipelines are real files that parse and call only commands and
// options the rdma-failover binary has. (No Jenkins here: the Jenkinsfile is checked for balanced
// syntax and the declarative blocks a lab relies on; GitLab's YAML is parsed.)
import { expect } from 'chai';
import { existsSync, readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { cli } from '../support/cli.ts';
import { parseShard } from '../../harness/run/shard.ts';

const gitlabText = readFileSync('docs/ci/gitlab-ci.yml', 'utf8');
const jenkins = readFileSync('docs/ci/Jenkinsfile', 'utf8');

/** Every `./bin/rdma-failover.js …` command line in a text (quoted strings kept as one word). */
function commands(text: string): string[][] {
  return [...text.matchAll(/\.\/bin\/rdma-failover\.js ([^\n']*)/g)].map((m) => m[1]!.replace(/\s*\|\|.*$/, '').match(/"[^"]*"|\S+/g) ?? []);
}

/** Brackets balanced outside strings and comments (a Groovy file that cannot parse fails this). */
function balanced(text: string): string | undefined {
  const stack: string[] = [];
  const pairs: Record<string, string> = { ')': '(', ']': '[', '}': '{' };
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '/' && text[i + 1] === '/') i = text.indexOf('\n', i) === -1 ? text.length : text.indexOf('\n', i);
    else if (c === '"' || c === "'") {
      const end = text.indexOf(c, i + 1);
      if (end === -1) return `unterminated string at ${i}`;
      i = end + 1;
      continue;
    } else if ('([{'.includes(c)) stack.push(c);
    else if (')]}'.includes(c) && stack.pop() !== pairs[c]) return `unbalanced ${c} at offset ${i}`;
    i++;
  }
  return stack.length ? `unclosed ${stack.join('')}` : undefined;
}

describe('docs/ci: the CI engines, shown working', function () {
  this.timeout(120_000);

  it('GitLab: parses; shards × kernels as a parallel matrix, JUnit reports, the real lab behind a resource_group, a merge job', () => {
    const g = parse(gitlabText) as Record<string, Record<string, unknown>>;
    expect(g.stages).to.deep.equal(['certify', 'merge']);
    const vm = g['certify:vm']!;
    const matrix = (vm.parallel as { matrix: Record<string, string[]>[] }).matrix[0]!;
    expect(matrix.KERNEL).to.deep.equal(['debian-stable', 'debian-backports']);
    for (const s of matrix.SHARD!) expect(() => parseShard(s)).to.not.throw();
    expect((vm.artifacts as { reports: { junit: string } }).reports.junit).to.match(/junit\.xml$/);
    expect(g['certify:real']!.resource_group).to.be.a('string');
    expect(g.merge!.stage).to.equal('merge');
    expect(JSON.stringify(g.merge!.needs)).to.include('certify:vm');
  });

  it('Jenkins: balanced; a declarative pipeline with the matrix axes, a lock for the lab, JUnit, stash/unstash of every cell and the archive', () => {
    expect(balanced(jenkins)).to.equal(undefined);
    for (const needle of ['pipeline {', 'matrix {', "name 'KERNEL'", "name 'SHARD'", "lock(resource: 'rdma-lab')", 'junit ', 'stash name:', 'unstash ', 'archiveArtifacts']) expect(jenkins, needle).to.include(needle);
    // every stash the cells make is unstashed by the merge
    expect(jenkins).to.match(/for \(k in \['debian-stable', 'debian-backports'\]\)/).and.to.match(/for \(s in \['1-2', '2-2'\]\)/);
  });

  it('every command they run exists, with every option they pass', async () => {
    expect(existsSync('scripts/setup.sh')).to.equal(true);
    const lines = [...commands(gitlabText), ...commands(jenkins)];
    expect(lines.length).to.be.at.least(8);
    const helps = new Map<string, string>();
    for (const words of lines) {
      const sub = words.slice(0, words.findIndex((w) => w.startsWith('-') || w.startsWith('"') || w.includes('/') || w.includes('$')));
      const key = sub.join(' ');
      if (!helps.has(key)) {
        const r = await cli([...sub, '--help']);
        expect(r.code, `rdma-failover ${key} --help: ${r.stderr}`).to.equal(0);
        helps.set(key, r.stdout);
      }
      for (const opt of words.filter((w) => /^--?[a-z]/.test(w))) expect(helps.get(key), `rdma-failover ${key} has ${opt}`).to.match(new RegExp(`(^|[ ,])${opt}\\b`, 'm'));
    }
  });
});
