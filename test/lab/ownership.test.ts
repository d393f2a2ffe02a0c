// A lab is not the harness's: it creates, changes and removes only objects it named itself. For real,
// in the VM lab: the user's own storage objects are planted on the guests first — an LIO iSCSI target
// and LUN, a line in /etc/exports (with the file's stock comments), an nvmet port 1 and a subsystem, an SRP
// target (on an RDMA device of the user's), an iSCSI iface, node record and running iscsid, and a module
// loaded but unused (scsi_transport_srp: ib_srp's dependency, which `modprobe -r ib_srp` would take
// with it) — then the storage certification runs, and every byte of them must be as it was.
import { expect } from 'chai';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { releaseSharedLab } from '../../harness/fixture/lab-session.ts';
import { listJournals } from '../../harness/journal.ts';
import type { Node } from '../../harness/node/node.ts';
import { loadTopology } from '../../harness/topology/load.ts';
import { labUp, type VmLab } from '../../harness/vmlab/vm-lab.ts';
import { suite, test, expect as fexpect } from '../../harness/fixture/test.ts';
import { SrpWorkload, } from '../../harness/workload/srp.ts';
import { LabPreconditionError } from '../../harness/workload/block-storage.ts';
import { parseProcModules } from '../../harness/workload/modules.ts';
import { cli } from '../support/cli.ts';

const LAB = 'vm-rxe';
const T = '/sys/kernel/config/target';
const N = '/sys/kernel/config/nvmet';

/** The user's objects on the target/server node. */
const PLANT_SERVER = `set -e
modprobe -a target_core_mod target_core_file iscsi_target_mod nvmet ib_srpt rdma_rxe
truncate -s 32M /root/user-disk.img
mkdir -p ${T}/core/fileio_0/user_disk
echo "fd_dev_name=/root/user-disk.img,fd_dev_size=33554432" > ${T}/core/fileio_0/user_disk/control
echo 1 > ${T}/core/fileio_0/user_disk/enable
i=${T}/iscsi/iqn.2003-01.org.example:user-disk/tpgt_1
mkdir -p $i/lun/lun_0 $i/np/127.0.0.1:3260
ln -s ${T}/core/fileio_0/user_disk $i/lun/lun_0/user_lun
echo 1 > $i/enable
mkdir -p /srv/user-share
printf "# the user's exports\\n/srv/user-share 10.9.0.0/16(ro,sync,no_subtree_check,fsid=4711)\\n" >> /etc/exports
mkdir -p ${N}/ports/1 ${N}/subsystems/nqn.2014-08.org.example:user-sub
echo ipv4 > ${N}/ports/1/addr_adrfam; echo tcp > ${N}/ports/1/addr_trtype
echo 127.0.0.1 > ${N}/ports/1/addr_traddr; echo 4420 > ${N}/ports/1/addr_trsvcid
echo 1 > ${N}/subsystems/nqn.2014-08.org.example:user-sub/attr_allow_any_host
rdma link add user_rxe type rxe netdev mgmt0
for k in $(seq 50); do g=$(cat /sys/class/infiniband/user_rxe/ports/1/gids/0 2>/dev/null); [ -n "$g" ] && [ "$g" != 0000:0000:0000:0000:0000:0000:0000:0000 ] && break; sleep 0.1; done
s=${T}/srpt/\${g#fe80:0000:0000:0000:}/user_tpg
mkdir -p $s/lun/lun_0
ln -s ${T}/core/fileio_0/user_disk $s/lun/lun_0/user_lun
echo 1 > $s/enable`;

const UNPLANT_SERVER = `for e in ${T}/srpt/*/user_tpg/enable; do [ -e "$e" ] && echo 0 > "$e"; done
rm -f ${T}/srpt/*/user_tpg/lun/lun_0/user_lun; rmdir ${T}/srpt/*/user_tpg/lun/lun_0 ${T}/srpt/*/user_tpg 2>/dev/null
for d in ${T}/srpt/*; do [ -e "$d/user_tpg" ] || case "$d" in */discovery_auth) ;; *) rmdir "$d" 2>/dev/null ;; esac; done
rdma link delete user_rxe 2>/dev/null
i=${T}/iscsi/iqn.2003-01.org.example:user-disk/tpgt_1
echo 0 > $i/enable 2>/dev/null; rm -f $i/lun/lun_0/user_lun; rmdir $i/lun/lun_0 $i/np/127.0.0.1:3260 $i ${T}/iscsi/iqn.2003-01.org.example:user-disk 2>/dev/null
rmdir ${T}/core/fileio_0/user_disk ${T}/core/fileio_0 2>/dev/null
rmdir ${N}/ports/1 ${N}/subsystems/nqn.2014-08.org.example:user-sub 2>/dev/null
sed -i '/user-share\\|the user.s exports/d' /etc/exports; rm -f /root/user-disk.img; true`;

/** The user's objects on the initiator/client node. */
const PLANT_CLIENT = `set -e
modprobe scsi_transport_srp
mkdir -p /run/lock/iscsi
iscsid
iscsiadm -m iface -I user_iface -o new >/dev/null
iscsiadm -m node -T iqn.2003-01.org.example:remote -p 10.9.9.9:3260 -I user_iface -o new >/dev/null`;

const UNPLANT_CLIENT = `iscsiadm -m node -T iqn.2003-01.org.example:remote -p 10.9.9.9:3260 -I user_iface -o delete >/dev/null 2>&1
iscsiadm -m iface -I user_iface -o delete >/dev/null 2>&1; pkill -x iscsid; rmmod scsi_transport_srp 2>/dev/null; true`;

/** Every path and every readable attribute value under the user's objects, the files they own, and
 *  the daemons and records they run: compared byte for byte before and after. */
const SNAPSHOT = `for root in ${T}/core/fileio_0 ${T}/iscsi/iqn.2003-01.org.example:user-disk ${T}/srpt ${N}/ports/1 ${N}/subsystems/nqn.2014-08.org.example:user-sub; do
  [ -e "$root" ] || continue
  find "$root" -mindepth 0 | sort | while read -r p; do
    if [ -L "$p" ]; then echo "L $p -> $(readlink "$p")"
    elif [ -d "$p" ]; then echo "D $p"
    else case "$p" in */statistics/*|*/info|*/in_cmds|*/read_mbytes|*/write_mbytes|*/port_lun_status*) echo "F $p" ;; *) echo "F $p = $(cat "$p" 2>/dev/null | head -c 300 | tr '\\n' ' ')" ;; esac; fi
  done
done
echo "exports $(sha256sum /etc/exports | cut -c1-64)"
echo "etab $(grep user-share /var/lib/nfs/etab 2>/dev/null)"
echo "iscsid $(pgrep -x iscsid)"
echo "ifaces $(ls /etc/iscsi/ifaces 2>/dev/null | tr '\\n' ' ')"
echo "nodes $(ls /etc/iscsi/nodes 2>/dev/null | tr '\\n' ' ')"
echo "rdma $(rdma link show | grep user_rxe)"
echo "modules $(for m in ib_srpt nvmet iscsi_target_mod target_core_file scsi_transport_srp; do [ -d /sys/module/$m ] && printf '%s ' $m; done)"`;

/** Every loaded module, with its reference count and users. */
const MODULES = 'cat /proc/modules';

/**
 * Modules: none of the node's is gone, and every one that appeared during the run is still in use
 * (by a module from before, e.g. crc64_rocksoft binding crc64_rocksoft_generic, which the harness
 * cannot unload without unloading the user's) — an unused leftover is a change the harness could
 * have undone. Returns the problems, and the leftovers for the record.
 */
function moduleChanges(before: string, after: string): { problems: string[]; left: string[] } {
  const b = parseProcModules(before);
  const a = parseProcModules(after);
  const gone = [...b.keys()].filter((m) => !a.has(m)).map((m) => `${m} was loaded before the run and is gone`);
  const extra = [...a.values()].filter((m) => !b.has(m.name));
  const unused = extra.filter((m) => m.refs === 0 && !m.usedBy.length).map((m) => `${m.name} appeared during the run and nothing uses it`);
  return { problems: [...gone, ...unused], left: extra.map((m) => `${m.name} (${m.usedBy.length ? `used by ${m.usedBy.join(' ')}` : `${m.refs} ref`})`) };
}

/** What the harness names its own objects: none may be left. */
const OURS = `find ${T} ${N} -maxdepth 4 \\( -name 'rf_*' -o -name 'fileio_424*' -o -name '*rf-iser*' -o -name '*rf-nvme*' -o -name 'port_442*' \\) 2>/dev/null
[ -d ${N}/ports/4420 ] && echo "${N}/ports/4420"
ls /etc/iscsi/ifaces/rf_iser 2>/dev/null; grep rf-nfs /var/lib/nfs/etab 2>/dev/null; ls -d /srv/rf-nfs /mnt/rf-nfs /run/rf-iser /run/rf-nvme /run/rf-srp 2>/dev/null; true`;

/** The snapshot lines that differ, as "- before" and "+ after" (readable in a failure). */
function changed(before: string, after: string): string[] {
  const a = before.split('\n');
  const b = after.split('\n');
  return [...a.filter((l) => !b.includes(l)).map((l) => `- ${l}`), ...b.filter((l) => !a.includes(l)).map((l) => `+ ${l}`)];
}

/** The nodes the runs under `dir` rebooted (a retry on a fresh lab, or a repair before a test). */
function rebootsIn(dir: string): string[] {
  const out = new Set<string>();
  for (const run of readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory())) {
    const f = join(dir, run.name, 'report.json');
    if (!existsSync(f)) continue;
    const rep = JSON.parse(readFileSync(f, 'utf8')) as { tests: { repairs: { node: string; action: string }[]; attempts: unknown[] }[] };
    for (const t of rep.tests) {
      for (const p of t.repairs) if (/reboot/i.test(p.action)) out.add(p.node);
      if (t.attempts.length) out.add('a node (a test was retried on a fresh lab)');
    }
  }
  return [...out];
}

describe('the harness touches only what it created: the user\'s own storage objects survive the storage certification', function () {
  this.timeout(1_800_000);
  let vm: VmLab;
  let dir: string;
  const server = () => vm.node('node-b');
  const client = () => vm.node('node-a');
  const snap = async (n: Node) => (await n.run(['sh', '-c', SNAPSHOT], { timeoutMs: 60_000 })).stdout;

  before(async function () {
    this.timeout(600_000);
    await releaseSharedLab({ keepLab: true });
    vm = await labUp(loadTopology('topologies/vm-rxe.yaml'));
    dir = mkdtempSync(join(tmpdir(), 'rf-own-'));
    await server().run(['sh', '-c', PLANT_SERVER], { timeoutMs: 120_000 });
    await client().run(['sh', '-c', PLANT_CLIENT], { timeoutMs: 60_000 });
  });
  after(async () => {
    await server()?.exec(['sh', '-c', UNPLANT_SERVER], { timeoutMs: 120_000 }).catch(() => undefined);
    await client()?.exec(['sh', '-c', UNPLANT_CLIENT], { timeoutMs: 60_000 }).catch(() => undefined);
    await vm?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('LIO target + LUN, export line, nvmet port and subsystem, SRP target, iSCSI records and iscsid: byte for byte as before', async function () {
    this.timeout(3_000_000);
    let r: Awaited<ReturnType<typeof cli>>;
    let before: { server: string; client: string };
    let modsBefore: string[] = [];
    for (let round = 1; ; round++) {
      before = { server: await snap(server()), client: await snap(client()) };
      modsBefore = await Promise.all([server(), client()].map(async (n) => (await n.run(['sh', '-c', MODULES])).stdout));
      expect(before.server).to.include('user_disk').and.to.include('user_tpg').and.to.include(`${N}/ports/1`);
      expect(before.client).to.match(/iscsid \d+/).and.to.include('user_iface');
      const reports = join(dir, `reports-${round}`);
      r = await cli(['run', '--quick', 'iser.failover', 'nfs.failover', 'nvme.failover', 'srp.failover'], {
        timeoutMs: 1_500_000,
        env: { RDMA_FAILOVER_TAGS: '', RDMA_FAILOVER_EXCLUDE_TAGS: 'full,long', RDMA_FAILOVER_REPORTS: reports, RDMA_FAILOVER_PDF: '0' },
      });
      // The VM lab reboots a node whose emulated NIC stalled (lab infrastructure): the user's
      // objects on it went with the boot, so this round proves nothing either way. Plant again, once.
      const rebooted = rebootsIn(reports);
      if (!rebooted.length) break;
      if (round === 2) this.skip();
      console.log(`      (the VM lab rebooted ${rebooted.join(', ')} for lab infrastructure: the user's objects are planted again and the run repeated)`);
      await server().exec(['sh', '-c', UNPLANT_SERVER], { timeoutMs: 120_000 });
      await client().exec(['sh', '-c', UNPLANT_CLIENT], { timeoutMs: 60_000 });
      await server().run(['sh', '-c', PLANT_SERVER], { timeoutMs: 120_000 });
      await client().run(['sh', '-c', PLANT_CLIENT], { timeoutMs: 60_000 });
    }
    // iSER, NFS, NVMe pass; SRP fails the known way (it ignores ADDR_CHANGE): exit 3, known only
    expect(r.stdout, r.stdout.slice(-4000)).to.match(/\n3 passed, 0 failed, 0 skipped\n/).and.to.match(/1 known failure: UL-SRP-01/);
    expect(r.code).to.equal(3);
    for (const [n, was] of [[server(), before.server], [client(), before.client]] as const) {
      const now = await snap(n);
      expect(changed(was, now).join('\n'), `${n.name}: lines before → after`).to.equal('');
      expect(now, `${n.name}: byte for byte`).to.equal(was);
    }
    for (const n of [server(), client()]) expect((await n.run(['sh', '-c', OURS])).stdout.trim(), `${n.name}: the harness's own objects`).to.equal('');
    const modsAfter = await Promise.all([server(), client()].map(async (n) => (await n.run(['sh', '-c', MODULES])).stdout));
    const mods = [server(), client()].map((n, i) => ({ node: n.name, ...moduleChanges(modsBefore[i]!, modsAfter[i]!) }));
    console.log(`      measured: modules left after the run, each still in use: ${mods.map((m) => `${m.node} ${m.left.join(', ') || 'none'}`).join('; ')}`);
    expect(mods.flatMap((m) => m.problems.map((p) => `${m.node}: ${p}`))).to.deep.equal([]);
    expect(listJournals(LAB)).to.deep.equal([]);
  });
});

// A target of the user's on the bond's own RDMA port: ib_srpt's enable is per port, so the harness
// cannot run SRP there without disabling it. The test is skipped with that reason; nothing changes.
suite('SRP on an RDMA port that already carries a user\'s target', { requires: { nodes: 2, modules: ['ib_srpt'] } }, () => {
  test('the SRP workload refuses (a lab precondition), and the user\'s target is untouched', async (t) => {
    const [initiator, target] = t.pair(['initiator', 'target']);
    const tn = t.node(target);
    const plant = `modprobe ib_srpt; g=$(cat /sys/class/infiniband/rxe0/ports/1/gids/0); d=${T}/srpt/\${g#fe80:0000:0000:0000:}/user_tpg; mkdir -p "$d"; echo "$d"`;
    const dirOf = (await tn.run(['sh', '-c', plant])).stdout.trim();
    t.scope.defer('remove the planted target', async () => void (await tn.run(['sh', '-c', 'rmdir "$1" "$(dirname "$1")"', 'rm', dirOf])));
    const before = (await tn.run(['sh', '-c', `find ${T}/srpt | sort`])).stdout;
    const err = await new SrpWorkload(t.lab, { initiator, target, sizeMiB: 8 }).setup().then(
      (w) => w.teardown().then(() => undefined),
      (e: unknown) => e,
    );
    fexpect(err).to.be.instanceOf(LabPreconditionError);
    fexpect((err as Error).message).to.match(/already has a target on the bond's RDMA port/);
    fexpect((await tn.run(['sh', '-c', `find ${T}/srpt | sort`])).stdout).to.equal(before);
  });
});
