// The user's own objects on a lab the harness must leave as found, for the tests that plant them
// first and compare after: an LIO iSCSI target and LUN, a line in /etc/exports (with the file's stock
// comments), an nvmet port 1 and a subsystem, an SRP target (on an RDMA device of the user's), an
// iSCSI iface, node record and running iscsid, and a module loaded but unused (scsi_transport_srp:
// ib_srp's dependency, which `modprobe -r ib_srp` would take with it).
import { parseProcModules } from '../../harness/workload/modules.ts';
import type { Node } from '../../harness/node/node.ts';

export const T = '/sys/kernel/config/target';
export const N = '/sys/kernel/config/nvmet';

/** The user's objects on the target/server node. */
export const PLANT_SERVER = `set -e
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

export const UNPLANT_SERVER = `for e in ${T}/srpt/*/user_tpg/enable; do [ -e "$e" ] && echo 0 > "$e"; done
rm -f ${T}/srpt/*/user_tpg/lun/lun_0/user_lun; rmdir ${T}/srpt/*/user_tpg/lun/lun_0 ${T}/srpt/*/user_tpg 2>/dev/null
for d in ${T}/srpt/*; do [ -e "$d/user_tpg" ] || case "$d" in */discovery_auth) ;; *) rmdir "$d" 2>/dev/null ;; esac; done
rdma link delete user_rxe 2>/dev/null
i=${T}/iscsi/iqn.2003-01.org.example:user-disk/tpgt_1
echo 0 > $i/enable 2>/dev/null; rm -f $i/lun/lun_0/user_lun; rmdir $i/lun/lun_0 $i/np/127.0.0.1:3260 $i ${T}/iscsi/iqn.2003-01.org.example:user-disk 2>/dev/null
rmdir ${T}/core/fileio_0/user_disk ${T}/core/fileio_0 2>/dev/null
rmdir ${N}/ports/1 ${N}/subsystems/nqn.2014-08.org.example:user-sub 2>/dev/null
sed -i '/user-share\\|the user.s exports/d' /etc/exports; rm -f /root/user-disk.img; true`;

/** The user's objects on the initiator/client node. */
export const PLANT_CLIENT = `set -e
modprobe scsi_transport_srp
mkdir -p /run/lock/iscsi
iscsid
iscsiadm -m iface -I user_iface -o new >/dev/null
iscsiadm -m node -T iqn.2003-01.org.example:remote -p 10.9.9.9:3260 -I user_iface -o new >/dev/null`;

export const UNPLANT_CLIENT = `iscsiadm -m node -T iqn.2003-01.org.example:remote -p 10.9.9.9:3260 -I user_iface -o delete >/dev/null 2>&1
iscsiadm -m iface -I user_iface -o delete >/dev/null 2>&1; pkill -x iscsid; rmmod scsi_transport_srp 2>/dev/null; true`;

/** Every path and every readable attribute value under the user's objects, the files they own, and
 *  the daemons and records they run: compared byte for byte before and after. */
export const SNAPSHOT = `for root in ${T}/core/fileio_0 ${T}/iscsi/iqn.2003-01.org.example:user-disk ${T}/srpt ${N}/ports/1 ${N}/subsystems/nqn.2014-08.org.example:user-sub; do
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
export const MODULES = 'cat /proc/modules';

/**
 * Modules: none of the node's is gone, and every one that appeared during the run is still in use
 * (by a module from before, e.g. crc64_rocksoft binding crc64_rocksoft_generic, which the harness
 * cannot unload without unloading the user's) — an unused leftover is a change the harness could
 * have undone. Returns the problems, and the leftovers for the record.
 */
export function moduleChanges(before: string, after: string): { problems: string[]; left: string[] } {
  const b = parseProcModules(before);
  const a = parseProcModules(after);
  const gone = [...b.keys()].filter((m) => !a.has(m)).map((m) => `${m} was loaded before the run and is gone`);
  const extra = [...a.values()].filter((m) => !b.has(m.name));
  const unused = extra.filter((m) => m.refs === 0 && !m.usedBy.length).map((m) => `${m.name} appeared during the run and nothing uses it`);
  return { problems: [...gone, ...unused], left: extra.map((m) => `${m.name} (${m.usedBy.length ? `used by ${m.usedBy.join(' ')}` : `${m.refs} ref`})`) };
}

/** What the harness names its own objects: none may be left. */
export const OURS = `find ${T} ${N} -maxdepth 4 \\( -name 'rf_*' -o -name 'fileio_424*' -o -name '*rf-iser*' -o -name '*rf-nvme*' -o -name 'port_442*' \\) 2>/dev/null
[ -d ${N}/ports/4420 ] && echo "${N}/ports/4420"
ls /etc/iscsi/ifaces/rf_iser 2>/dev/null; grep rf-nfs /var/lib/nfs/etab 2>/dev/null; ls -d /srv/rf-nfs /mnt/rf-nfs /run/rf-iser /run/rf-nvme /run/rf-srp 2>/dev/null; true`;

/** The snapshot lines that differ, as "- before" and "+ after" (readable in a failure). */
export function changed(before: string, after: string): string[] {
  const a = before.split('\n');
  const b = after.split('\n');
  return [...a.filter((l) => !b.includes(l)).map((l) => `- ${l}`), ...b.filter((l) => !a.includes(l)).map((l) => `+ ${l}`)];
}

/** Plants the user's objects: the target/server side and the initiator/client side. */
export async function plant(server: Node, client: Node): Promise<void> {
  await server.run(['sh', '-c', PLANT_SERVER], { timeoutMs: 120_000 });
  await client.run(['sh', '-c', PLANT_CLIENT], { timeoutMs: 60_000 });
}

/** Removes them again (best effort: a node may be gone). */
export async function unplant(server: Node | undefined, client: Node | undefined): Promise<void> {
  await server?.exec(['sh', '-c', UNPLANT_SERVER], { timeoutMs: 120_000 }).catch(() => undefined);
  await client?.exec(['sh', '-c', UNPLANT_CLIENT], { timeoutMs: 60_000 }).catch(() => undefined);
}

/** The snapshot of a node's user objects (compared byte for byte). */
export const snapshot = async (n: Node): Promise<string> => (await n.run(['sh', '-c', SNAPSHOT], { timeoutMs: 60_000 })).stdout;
/** /proc/modules of a node. */
export const modules = async (n: Node): Promise<string> => (await n.run(['sh', '-c', MODULES], { timeoutMs: 30_000 })).stdout;
/** The harness's own objects still on a node (none may be). */
export const ours = async (n: Node): Promise<string> => (await n.run(['sh', '-c', OURS], { timeoutMs: 30_000 })).stdout.trim();
