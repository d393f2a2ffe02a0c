// The default-GID repair before a test, run for real by sh on this machine against a sysfs made of
// files and an `ip` that stands in for the kernel (the VM lab runs it against rxe before nearly every
// failover test). What is checked here is its logic: cycle the bond only when GID 0 is gone, and say
// "restored" only once every port has it back and is ACTIVE.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GID_RESTORE } from '../../harness/fabric/fabric.ts';

const GID = 'fe80:0000:0000:0000:5054:e7ff:fead:0001';
const ZERO = '0000:0000:0000:0000:0000:0000:0000:0000';

describe('default GID repair (sh, on files)', function () {
  this.timeout(20_000);
  let dir: string;
  let ib: string;
  let bin: string;
  const put = (path: string, text: string) => {
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, `${text}\n`);
  };
  /** An `ip` that logs its words and, on "up", does what the kernel does (or not). */
  const fakeIp = (onUp: string) => {
    writeFileSync(join(bin, 'ip'), `#!/bin/sh\necho "$*" >> "${dir}/ip.log"\ncase "$*" in *" up") ${onUp} ;; esac\n`);
    chmodSync(join(bin, 'ip'), 0o755);
  };
  const run = (bound = 5, ports = ['rxe0/ports/1']) =>
    execFileSync('sh', ['-c', GID_RESTORE, 'gid-restore', 'bond0', String(bound), ib, ...ports], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } }).trim();
  const ipCalls = () => (existsSync(join(dir, 'ip.log')) ? readFileSync(join(dir, 'ip.log'), 'utf8').trim().split('\n') : []);

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'rf-gid-'));
    ib = join(dir, 'infiniband');
    bin = join(dir, 'bin');
    mkdirSync(bin);
    put(join(ib, 'rxe0/ports/1/gids/0'), GID);
    put(join(ib, 'rxe0/ports/1/state'), '4: ACTIVE');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('GID 0 there: "intact", and the bond is not touched', () => {
    fakeIp('true');
    expect(run()).to.equal('intact');
    expect(ipCalls()).to.deep.equal([]);
  });

  it('GID 0 zeroed: the bond is cycled down then up, and "restored" once the GID is back', () => {
    put(join(ib, 'rxe0/ports/1/gids/0'), ZERO);
    fakeIp(`echo ${GID} > "${ib}/rxe0/ports/1/gids/0"`);
    expect(run()).to.equal('restored');
    expect(ipCalls()).to.deep.equal(['link set dev bond0 down', 'link set dev bond0 up']);
  });

  it('a GID that is missing (unreadable) counts as gone', () => {
    rmSync(join(ib, 'rxe0/ports/1/gids/0'));
    fakeIp(`echo ${GID} > "${ib}/rxe0/ports/1/gids/0"`);
    expect(run()).to.equal('restored');
  });

  it('the GID never comes back: "gone" with what is still wrong, at the bound', () => {
    put(join(ib, 'rxe0/ports/1/gids/0'), ZERO);
    fakeIp('true');
    const t0 = Date.now();
    expect(run(1)).to.equal(`gone: rxe0/ports/1=${ZERO}/4: ACTIVE`);
    expect(Date.now() - t0).to.be.within(900, 5000);
  });

  it('the GID is back but the port is not ACTIVE yet: not "restored" until it is', () => {
    put(join(ib, 'rxe0/ports/1/gids/0'), ZERO);
    fakeIp(`echo ${GID} > "${ib}/rxe0/ports/1/gids/0"; echo "1: DOWN" > "${ib}/rxe0/ports/1/state"`);
    expect(run(1)).to.equal(`gone: rxe0/ports/1=${GID}/1: DOWN`);
    // ...and once the port comes up (here: after 0.3 s, in the background), it is "restored"
    fakeIp(`echo ${GID} > "${ib}/rxe0/ports/1/gids/0"; echo "1: DOWN" > "${ib}/rxe0/ports/1/state"; (sleep 0.3; echo "4: ACTIVE" > "${ib}/rxe0/ports/1/state") &`);
    put(join(ib, 'rxe0/ports/1/gids/0'), ZERO);
    expect(run(5)).to.equal('restored');
  });

  it('one port of two lost its GID: the bond is cycled, and both are checked', () => {
    put(join(ib, 'rxe1/ports/1/gids/0'), ZERO);
    put(join(ib, 'rxe1/ports/1/state'), '4: ACTIVE');
    fakeIp('true');
    expect(run(1, ['rxe0/ports/1', 'rxe1/ports/1'])).to.equal(`gone: rxe1/ports/1=${ZERO}/4: ACTIVE`);
    expect(ipCalls()).to.have.length(2);
  });

  it('ip fails: the script fails (the caller reports it), nothing claimed', () => {
    put(join(ib, 'rxe0/ports/1/gids/0'), ZERO);
    writeFileSync(join(bin, 'ip'), '#!/bin/sh\necho "RTNETLINK answers: Operation not permitted" >&2\nexit 2\n');
    expect(() => run()).to.throw(/Command failed/);
  });
});
