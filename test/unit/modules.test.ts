// What the harness unloads is exactly what it loaded: the list comes from `modprobe --show-depends`
// (dependencies and soft dependencies included, in load order), never from `modprobe -r`, which also
// removes any unused dependency — a module the lab's owner loaded among them.
import { expect } from 'chai';
import { parseShowDepends } from '../../harness/workload/modules.ts';

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
