// What the harness unloads is exactly what it loaded: the list comes from `modprobe --show-depends`
// (dependencies and soft dependencies included, in load order), never from `modprobe -r`, which also
// removes any unused dependency — a module the lab's owner loaded among them.
import { expect } from 'chai';
import { holdersToUnload, parseHolders, parseShowDepends } from '../../harness/workload/modules.ts';

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
const HOLDERS = `scsi_transport_iscsi:ib_iser iscsi_tcp libiscsi libiscsi_tcp 
libiscsi:ib_iser iscsi_tcp libiscsi_tcp 
ib_iser:
crc64:crc64_rocksoft_generic 
crc64_rocksoft:t10_pi 
t10_pi:
libiscsi_tcp:iscsi_tcp 
iscsi_tcp:
crc64_rocksoft_generic:
`;

describe('modules: what was loaded on top of ours', () => {
  const holders = parseHolders(HOLDERS);

  it('reads /sys/module/*/holders as printed by the one-round-trip script', () => {
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
