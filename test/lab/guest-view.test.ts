// The VM lab's guests share this machine's user space, not its secrets. A canary planted in the
// controller's /root/.ssh, its SSH host keys, password hashes, the project (and the lab's own client
// key) and the host's /proc must stay out of reach of a guest's root — even one that unmounts the
// guest's own tmpfs over /root and its own /proc to look underneath.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { releaseSharedLab } from '../../harness/fixture/lab-session.ts';
import { loadTopology } from '../../harness/topology/load.ts';
import { labUp, type VmLab } from '../../harness/vmlab/vm-lab.ts';
import { PROJECT_ROOT } from '../../harness/vmlab/paths.ts';

const LOOK = `cd / && umount /root || exit 9
printf 'root_mounts=%s\\n' "$(grep -c ' /root ' /proc/self/mounts)"
umount /proc || exit 9
printf 'proc_self=%s\\n' "$([ -e /proc/self ] && echo yes || echo no)"
printf 'root=%s\\n' "$(ls -A /root | tr '\\n' ' ')"
printf 'hostkey=%s\\n' "$(head -c 40 /etc/ssh/ssh_host_ed25519_key 2>/dev/null)"
printf 'hashes=%s\\n' "$(cut -d: -f2 /etc/shadow | grep -c '^\\$')"
printf 'project=%s\\n' "$(ls -d "$1" 2>/dev/null)"
printf 'proc=%s\\n' "$(ls /proc | head -3 | tr '\\n' ' ')"
printf 'userspace=%s\\n' "$(ls /usr/bin/fio /usr/sbin/sshd | tr '\\n' ' ')"`;

describe('VM guests see the user space, not the controller\'s secrets', function () {
  this.timeout(600_000);
  let vm: VmLab;
  const canary = `/root/.ssh/rf-canary-${randomBytes(6).toString('hex')}`;

  before(async function () {
    this.timeout(600_000);
    await releaseSharedLab({ keepLab: true });
    vm = await labUp(loadTopology('topologies/vm-rxe.yaml'));
    mkdirSync('/root/.ssh', { recursive: true, mode: 0o700 });
    writeFileSync(canary, 'a private key would be here\n', { mode: 0o600 });
  });
  after(async () => {
    rmSync(canary, { force: true });
    await vm?.close();
  });

  it('a guest root that looks underneath its own mounts finds no canary, no host key, no password hash, no project, no host /proc', async () => {
    expect(existsSync(canary)).to.equal(true);
    for (const n of vm.nodes.values()) {
      // in a private mount namespace of the guest: its own /root and /proc stay mounted for the rest
      const r = await n.run(['unshare', '-m', 'sh', '-c', LOOK, 'look', PROJECT_ROOT], { timeoutMs: 30_000 });
      const seen = Object.fromEntries(r.stdout.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1).trim()]));
      expect(seen, n.name).to.deep.equal({ root_mounts: '0', proc_self: 'no', root: '', hostkey: '', hashes: '0', project: '', proc: '', userspace: '/usr/bin/fio /usr/sbin/sshd' });
    }
  });
});
