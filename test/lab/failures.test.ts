// lab up failure paths: each fails fast with a message that says what to do, and leaves nothing.
import { expect } from 'chai';
import { mkdtempSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli } from '../support/cli.ts';
import { labIdFor } from '../../harness/vmlab/vm-lab.ts';
import { statePath } from '../../harness/vmlab/state.ts';
import { prepareKernel } from '../../harness/vmlab/kernel.ts';
import { netnsList, hostTaps } from '../support/lab.ts';

function topology(name: string, vm: string): string {
  return `name: ${name}
kind: vm
vm:
${vm}
nodes:
  - name: node-a
    bonds:
      - name: bond0
        address: 192.168.77.1/24
        slaves:
          - { name: eth0, link: rxe }
          - { name: eth1, link: rxe }
`;
}

describe('lab up failure paths', function () {
  this.timeout(180_000);
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'rf-labfail-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  const leavesNothing = (name: string) => {
    expect(netnsList()).to.not.include(`rf-${name}`);
    expect(hostTaps(labIdFor(name))).to.deep.equal([]);
    expect(existsSync(statePath(name))).to.equal(false);
  };

  it('a missing kernel image: says which file, starts nothing', async () => {
    const f = join(dir, 'nokernel.yaml');
    writeFileSync(f, topology('rf-fail-kernel', `  kernel: { image: ${dir}/no-such-vmlinuz, modules: ${dir}/no-such-modules }`));
    const r = await cli(['lab', 'up', f], { timeoutMs: 60_000 });
    expect(r.code).to.equal(2);
    expect(r.stderr).to.include(`kernel image ${dir}/no-such-vmlinuz does not exist`);
    leavesNothing('rf-fail-kernel');
  });

  it('an SSH port already in use: names the port and the node, starts nothing', async () => {
    const server: Server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      const f = join(dir, 'port.yaml');
      writeFileSync(f, topology('rf-fail-port', `  ssh_port_base: ${port}`));
      const r = await cli(['lab', 'up', f], { timeoutMs: 60_000 });
      expect(r.code).to.equal(2);
      expect(r.stderr).to.include(`port ${port} (SSH forward for node-a, vm.ssh_port_base + 0) is in use`);
      leavesNothing('rf-fail-port');
    } finally {
      server.close();
    }
  });

  it('a guest that never comes up: fails after the boot timeout with the console tail', async () => {
    // The real kernel with init=/bin/false as its first program: it boots, then panics (no init).
    const k = await prepareKernel('debian-stable');
    const f = join(dir, 'noboot.yaml');
    writeFileSync(f, topology('rf-fail-boot', `  kernel: { image: ${k.image}, modules: ${k.modulesRoot}, name: broken }\n  boot_timeout_s: 15`));
    const env = { RDMA_FAILOVER_GUEST_APPEND: 'rdinit=/bin/false' };
    const t0 = Date.now();
    const r = await cli(['lab', 'up', f], { timeoutMs: 120_000, env });
    expect(r.code, r.stderr).to.equal(2);
    expect(r.stderr, r.stderr).to.match(/guest node-a (did not answer SSH within 15 s|stopped while booting)/);
    expect(r.stderr).to.include('Console tail:');
    expect(r.stderr).to.match(/Kernel panic|No working init|rdinit/);
    expect(Date.now() - t0).to.be.lessThan(90_000);
    leavesNothing('rf-fail-boot');
  });
});
