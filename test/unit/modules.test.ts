// What the harness unloads is exactly what it loaded: the list comes from `modprobe --show-depends`
// (dependencies and soft dependencies included, in load order), never from `modprobe -r`, which also
// removes any unused dependency — a module the lab's owner loaded among them.
import { expect } from 'chai';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { appearedUnused, freedInUse, holdersToUnload, parseSurvey, surveyUnload, parseProcModules, parseRmmodEach, parseShowDepends, perTestModules, rmmodEach, unloadModules } from '../../harness/workload/modules.ts';
import { CommandGate, CommandRefusedError } from '../../harness/node/gate.ts';
import { LocalNode } from '../../harness/node/local.ts';

// Captured from a 6.1.0-57 guest: `modprobe -a --show-depends ib_srpt rds_rdma siw bonding`.
const SHOWN = `insmod /lib/modules/6.1.0-57-amd64/kernel/crypto/crct10dif_common.ko 
insmod /lib/modules/6.1.0-57-amd64/kernel/fs/configfs/configfs.ko 
insmod /lib/modules/6.1.0-57-amd64/kernel/crypto/crct10dif_common.ko 
insmod /lib/modules/6.1.0-57-amd64/kernel/arch/x86/crypto/crct10dif-pclmul.ko 
insmod /lib/modules/6.1.0-57-amd64/kernel/lib/crc-t10dif.ko 
insmod /lib/modules/6.1.0-57-amd64/kernel/drivers/target/target_core_mod.ko 
insmod /lib/modules/6.1.0-57-amd64/kernel/drivers/infiniband/core/rdma_cm.ko 
insmod /lib/modules/6.1.0-57-amd64/kernel/drivers/infiniband/ulp/srpt/ib_srpt.ko 
insmod /lib/modules/6.1.0-57-amd64/kernel/drivers/infiniband/core/rdma_cm.ko 
insmod /lib/modules/6.1.0-57-amd64/kernel/net/rds/rds_rdma.ko.xz 
builtin configfs
insmod /lib/modules/6.1.0-57-amd64/updates/siw.ko 
insmod /lib/modules/6.1.0-57-amd64/kernel/drivers/net/bonding/bonding.ko max_bonds=0 
`;

describe('modules: what modprobe would load', () => {
  it('names each module once, dependencies first, as /proc/modules spells it', () => {
    expect(parseShowDepends(SHOWN)).to.deep.equal(['crct10dif_common', 'configfs', 'crct10dif_pclmul', 'crc_t10dif', 'target_core_mod', 'rdma_cm', 'ib_srpt', 'rds_rdma', 'siw', 'bonding']);
  });

  it('leaves builtins and noise out', () => {
    expect(parseShowDepends('builtin configfs\nmodprobe: FATAL: Module nope not found\n\n')).to.deep.equal([]);
  });
});

// What the harness loaded for iSER and NVMe, and what the kernel and iscsid loaded on top of them
// (the holders named by rmmod's "in use by" in a 6.1 guest after UL-ISER-01 and UL-NVME-01).
// /proc/modules' used_by column: each module's holders (the same links as /sys/module/M/holders)
const HOLDING = `scsi_transport_iscsi 135168 4 ib_iser,iscsi_tcp,libiscsi,libiscsi_tcp, Live 0x0000000000000000
libiscsi 77824 3 ib_iser,iscsi_tcp,libiscsi_tcp, Live 0x0000000000000000
ib_iser 49152 0 - Live 0x0000000000000000
crc64 20480 1 crc64_rocksoft_generic, Live 0x0000000000000000
crc64_rocksoft 20480 1 t10_pi, Live 0x0000000000000000
t10_pi 16384 0 - Live 0x0000000000000000
libiscsi_tcp 32768 1 iscsi_tcp, Live 0x0000000000000000
iscsi_tcp 24576 0 - Live 0x0000000000000000
crc64_rocksoft_generic 16384 1 - Live 0x0000000000000000
`;

describe('modules: what was loaded on top of ours', () => {
  const holders = new Map([...parseProcModules(HOLDING).values()].map((m) => [m.name, m.usedBy] as const));

  it("reads each module's holders from /proc/modules' used_by column", () => {
    expect(holders.get('libiscsi')).to.deep.equal(['ib_iser', 'iscsi_tcp', 'libiscsi_tcp']);
    expect(holders.get('ib_iser')).to.deep.equal([]);
  });

  it('unloads the modules loaded on top of ours, each after every module that holds it, and nothing of ours twice', () => {
    const ours = ['scsi_transport_iscsi', 'libiscsi', 'ib_iser', 'crc64', 'crc64_rocksoft', 't10_pi'];
    const order = holdersToUnload(ours, holders);
    expect(order).to.have.members(['iscsi_tcp', 'libiscsi_tcp', 'crc64_rocksoft_generic']).and.to.have.length(3);
    expect(order.indexOf('iscsi_tcp'), 'iscsi_tcp holds libiscsi_tcp').to.be.lessThan(order.indexOf('libiscsi_tcp'));
  });

  it('nothing on top: nothing extra', () => {
    expect(holdersToUnload(['ib_iser'], holders)).to.deep.equal([]);
    expect(holdersToUnload([], holders)).to.deep.equal([]);
  });
});

// /proc/modules as 6.1 prints it (fields: name size refcnt used_by state address); the crypto
// modules are the ones a fresh lab kept after a run before the sweep.
const PROC = `crc64_rocksoft_generic 16384 1 - Live 0x0000000000000000
crc64 20480 1 crc64_rocksoft_generic, Live 0x0000000000000000
crc32c_generic 16384 0 - Live 0x0000000000000000
crc32c_intel 24576 0 - Live 0x0000000000000000
crc64_rocksoft 20480 1 t10_pi, Live 0x0000000000000000
t10_pi 16384 1 sd_mod, Live 0x0000000000000000
sd_mod 69632 0 - Live 0x0000000000000000
rpcrdma 303104 0 - Live 0x0000000000000000
virtio_net 65536 0 - Permanent 0x0000000000000000
`;

describe('modules: what appeared since the harness began', () => {
  const now = parseProcModules(PROC);
  const before = new Set(['crc64_rocksoft', 't10_pi', 'sd_mod', 'virtio_net']);

  it('reads /proc/modules: reference counts and users', () => {
    expect(now.get('crc64')).to.deep.equal({ name: 'crc64', refs: 1, usedBy: ['crc64_rocksoft_generic'] });
    expect(now.get('crc32c_generic')).to.include({ refs: 0 }).and.to.have.property('usedBy').that.is.empty;
    expect(parseProcModules('weird 1 - - Live 0x0').get('weird')!.refs).to.equal(-1);
  });

  it('sweeps only what appeared and nothing uses: never a module from before, never one in use, never one kept', () => {
    expect(appearedUnused(before, now)).to.deep.equal(['crc32c_generic', 'crc32c_intel', 'rpcrdma']);
    expect(appearedUnused(before, now, new Set(['rpcrdma'])), 'its cm_ids still exist').to.deep.equal(['crc32c_generic', 'crc32c_intel']);
    // crc64_rocksoft_generic is pinned by a count (the tfm of crc64_rocksoft, from before): it stays, and crc64 with it
    expect(appearedUnused(before, now)).to.not.include.members(['crc64_rocksoft_generic', 'crc64']);
  });

  it('a pin released, the next pass takes the module it pinned', () => {
    const after = parseProcModules(PROC.replace('crc64_rocksoft_generic 16384 1', 'crc64_rocksoft_generic 16384 0'));
    expect(appearedUnused(new Set([...before, 'crc32c_generic', 'crc32c_intel', 'rpcrdma']), after)).to.deep.equal(['crc64_rocksoft_generic']);
  });
});

describe('modules: every rmmod in one round trip', () => {
  it("reads each module's answer: unloaded, or rmmod's own last line", () => {
    const r = parseRmmodEach('ok ib_iser\nfail libiscsi rmmod: ERROR: Module libiscsi is in use by: iscsi_tcp\nok scsi_transport_iscsi\n');
    expect([...r]).to.deep.equal([
      ['ib_iser', undefined],
      ['libiscsi', 'rmmod: ERROR: Module libiscsi is in use by: iscsi_tcp'],
      ['scsi_transport_iscsi', undefined],
    ]);
  });
  it('a module the script never reached has no answer (the caller reports it not tried, never unloaded)', () => {
    const r = parseRmmodEach('ok ib_isert\n');
    expect(r.has('iscsi_target_mod')).to.equal(false);
    expect(parseRmmodEach('fail rdma_cm\n').get('rdma_cm'), 'a failure without a message is still a failure').to.equal('rmmod failed');
  });

  // M2 (a728733), RF-07 iSER: `rmmod ib_iser` waited in iser_exit's destroy_workqueue behind an
  // iser_release_work that never got its conn_stop — D state, deaf to signals. The script waited
  // out its 105 s bound, and the bound's error dropped the lines of the modules already unloaded.
  // The real script here, with a stand-in rmmod first on PATH (a kernel module cannot be made to
  // hang on purpose on this machine): one that answers, one in use, one that never returns.
  describe('an rmmod that does not return', () => {
    let dir: string;
    const path = process.env.PATH;
    const tmp = process.env.TMPDIR;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'rf-rmmod-test-'));
      const rmmod = join(dir, 'rmmod');
      writeFileSync(rmmod, `#!/bin/sh
case "$1" in
  rf_in_use) echo "rmmod: ERROR: Module rf_in_use is in use" >&2; exit 1 ;;
  rf_hangs) echo $$ > ${JSON.stringify(join(dir, 'hung.pid'))}; exec sleep 60 ;;
esac
exit 0
`);
      chmodSync(rmmod, 0o755);
      process.env.PATH = `${dir}:${path ?? ''}`;
      process.env.TMPDIR = dir;
    });
    after(() => {
      process.env.PATH = path;
      if (tmp === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = tmp;
      // the stand-in we started, by its PID
      const pid = existsSync(join(dir, 'hung.pid')) ? Number(readFileSync(join(dir, 'hung.pid'), 'utf8')) : 0;
      if (pid > 0) {
        try {
          process.kill(pid);
        } catch {
          // already gone
        }
      }
      rmSync(dir, { recursive: true, force: true });
    });

    it('is reported hung after its limit, the script ends, the modules before it keep their answers and the rest are not tried', async () => {
      const t0 = Date.now();
      const r = await rmmodEach(new LocalNode(), ['rf_ok', 'rf_in_use', 'rf_hangs', 'rf_after'], 1);
      expect(Date.now() - t0, 'the script returns soon after the limit (1 s), not at its outer bound').to.be.below(4000);
      expect([...r]).to.deep.equal([
        ['rf_ok', undefined],
        ['rf_in_use', 'rmmod: ERROR: Module rf_in_use is in use'],
        ['rf_hangs', "rmmod rf_hangs did not return within 1 s: it waits in the module's exit (D state), left as it is"],
        ['rf_after', 'not tried: rmmod rf_hangs hung'],
      ]);
      expect(readdirSync(dir).filter((f) => f.startsWith('rf-rmmod.')), 'its private directory is removed').to.deep.equal([]);
    });
  });
});

describe('modules: kernel libraries stay for the lab session, the ULP goes after each test', () => {
  // `modulesToLoad(node, ['ib_iser', 'sd_mod'])` on a fresh 6.1.0-57 guest, as the iSER workload journaled it
  const ISER = ['scsi_common', 'scsi_mod', 'scsi_transport_iscsi', 'libiscsi', 'ib_iser', 'crct10dif_common', 'crc64', 'crct10dif_pclmul', 'crct10dif_generic', 'crc_t10dif', 'crc64_rocksoft', 't10_pi', 'sd_mod'];
  it("unloads after the test the modules that hold the ULP's state, in load order", () => {
    expect(perTestModules(ISER)).to.deep.equal(['scsi_transport_iscsi', 'libiscsi', 'ib_iser']);
    expect(perTestModules(['sunrpc', 'rpcrdma', 'grace', 'lockd', 'nfs', 'dns_resolver', 'nfsv4'])).to.deep.equal(['sunrpc', 'rpcrdma', 'grace', 'lockd', 'nfs', 'nfsv4']);
    expect(perTestModules(['crct10dif_common', 'crc64', 't10_pi', 'nvme_core', 'nvme_fabrics', 'nvme_rdma'])).to.deep.equal(['nvme_core', 'nvme_fabrics', 'nvme_rdma']);
  });
  it('a list of libraries only leaves nothing to unload per test (fabric down takes them)', () => {
    expect(perTestModules(['crc64', 't10_pi', 'sd_mod'])).to.deep.equal([]);
  });

  // M1 (c1c1157): RF-04 iSER stopped at rxe's GSI line; its set-up, failing because the test had
  // stopped, undid itself behind the closed gate, and the unload's refusal was taken for "still
  // loaded": the entry left the journal and node-b kept ib_isert & co. A refusal must throw.
  it('an unload refused behind a stopped test\'s gate throws (its undo stays journaled), it is not "still loaded"', async () => {
    const gate = new CommandGate();
    gate.close('the test stopped');
    const tried = await gate.run(() => unloadModules(new LocalNode(), ['rf_no_such_module'])).then(
      () => 'resolved',
      (e: Error) => e,
    );
    expect(tried).to.be.instanceOf(CommandRefusedError);
  });
});

// N1 and M4 (6.1), RF-04 NFS: rpcrdma_ep_put's refcount underflow (the known double free), then the
// teardown unloaded rpcrdma, then the harness's own `rdma res show cm_id` oopsed in strlen on the
// unloaded module's address (a freed cm_id still in the resource table) and was killed.
describe('modules: an object freed while in use keeps its module loaded', () => {
  const DMESG = readFileSync(new URL('../fixtures/recorded/dmesg-rf04-nfs-refcount-underflow.txt', import.meta.url), 'utf8');
  const NFS = ['sunrpc', 'rpcrdma', 'grace', 'lockd', 'nfs', 'nfsv4'];

  it("names the module in the warning's call trace (6.1's rpcrdma refcount underflow), and only it", () => {
    expect(freedInUse(DMESG, NFS)).to.deep.equal(['rpcrdma']);
  });
  it('a module only listed in "Modules linked in" is not named', () => {
    expect(freedInUse(DMESG, ['sunrpc', 'nfs', 'lockd'])).to.deep.equal([]);
  });
  it("the same frames in a trace that is not a freed-while-in-use warning (a hung task's) name nothing", () => {
    const hung = DMESG.replace('refcount_t: underflow; use-after-free.', 'INFO: task kworker/0:1:17 blocked for more than 20 seconds.');
    expect(freedInUse(hung, NFS)).to.deep.equal([]);
  });
  it('a trace ends at its end marker: frames after it belong to no warning', () => {
    const after = `${DMESG}[   60.000000]  svc_rdma_free+0x1/0x2 [rpcrdma]\n`.replace(/rpcrdma_ep_put\+0xc6\/0xf0 \[rpcrdma\]|rpcrdma_xprt_disconnect\+0x429\/0x4e0 \[rpcrdma\]|xprt_rdma_connect_worker\+0xc4\/0xd0 \[rpcrdma\]|xprt_rdma_connect_worker \[rpcrdma\]/g, 'x+0x1/0x2');
    expect(freedInUse(after, NFS)).to.deep.equal([]);
  });
  it("KASAN's report counts the same way", () => {
    expect(freedInUse('BUG: KASAN: slab-use-after-free in cma_cancel_operation+0x1/0x2 [rdma_cm]\n  cma_cancel_operation+0x1/0x2 [rdma_cm]\n', ['rdma_cm', 'ib_cm'])).to.deep.equal(['rdma_cm']);
  });
});

// Every read an unload decides on, in one round trip (they were five, each a round trip to a busy guest).
describe('modules: the survey before an unload', () => {
  const PROC_LINE = 'rpcrdma 352256 0 - Live 0x0000000000000000\nsunrpc 724992 1 rpcrdma, Live 0x0000000000000000\n';
  const out = (stuck: string, cmids: string, end = '@@@end\n') => `0b0e4c6e-1d11-4a7e-9a3c-0f6b1c0f9e21\n${stuck}@@@modules\n${PROC_LINE}@@@freed\n@@@cmids\n${cmids}${end}`;

  it('reads the boot, the modules and their holders, and the owners of cm_ids', () => {
    const s = parseSurvey(out('', '[{"ifindex":7,"ifname":"rxe0","cm-idn":3,"state":"LISTEN","ps":"TCP","comm":"[rpcrdma]"}]\n'))!;
    expect(s.boot).to.equal('0b0e4c6e-1d11-4a7e-9a3c-0f6b1c0f9e21');
    expect(s.stuck).to.deep.equal([]);
    expect(s.loaded.get('sunrpc')?.usedBy).to.deep.equal(['rpcrdma']);
    expect([...(s.owners ?? [])]).to.deep.equal(['rpcrdma']);
  });

  it('a task stuck in RDMA code is named, and then the cm_ids were not walked (not read: undefined, not "none")', () => {
    const s = parseSurvey(out('@@ 42 kworker/0:1+events\n[<0>] iser_release_work+0x1/0x2 [ib_iser]\n[<0>] process_one_work+0x1/0x2\n', ''))!;
    expect(s.stuck).to.deep.equal(['kworker/0:1+events[42]']);
    expect(s.owners).to.equal(undefined);
  });

  it('a survey cut short is no survey', () => {
    expect(parseSurvey(out('', '[]\n', ''))).to.equal(undefined);
    expect(parseSurvey('0b0e4c6e\n@@@modules\n')).to.equal(undefined);
  });

  it('the real script on this machine (sh, awk, grep; no /proc/modules in this container) parses: its boot id, not the fallback', async () => {
    const s = await surveyUnload(new LocalNode(), ['rf_no_such_module']);
    expect(s.boot).to.equal(readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());
    expect(s.loaded.has('rf_no_such_module'), 'the fallback assumes the modules loaded').to.equal(false);
  });
});
