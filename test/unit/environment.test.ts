// The report's module fingerprint from one modinfo of every module (report/environment.ts).
import { expect } from 'chai';
import { moduleInfo } from '../../harness/report/environment.ts';

const R = '6.1.0-57-amd64';
// As `modinfo siw rds nosuch nvme-rdma bonding` printed it on the VM lab (6.1.0-57), abridged: a
// block per module found, in order, none for one it did not find; fields of each block.
const MODINFO = `filename:       /lib/modules/${R}/updates/siw.ko
alias:          rdma-link-siw
description:    Software iWARP Driver
depends:        ib_core,libcrc32c
name:           siw
vermagic:       ${R} SMP preempt mod_unload modversions
filename:       /lib/modules/${R}/kernel/net/rds/rds.ko
version:        4.0
srcversion:     0123456789ABCDEF
name:           rds
signature:      A2:B0:B2:76:F1:BE:E9:68:8F:A3:EA:F5:AA:89:B8:C5:39:D7:2C:59:
\t\t18:11:27:0A:2C:CB:CD:4E:48:5D:18:44:DA:1C:37:61:5B:04:40:FD:
filename:       /lib/modules/${R}/kernel/drivers/nvme/host/nvme-rdma.ko
name:           nvme_rdma
parm:           register_always:Use memory registration even for contiguous memory regions (bool)
filename:       (builtin)
name:           bonding
parm:           mode:Mode of operation; 0 for balance-rr, 1 for active-backup (charp)`;

describe('the report: modules from one modinfo', () => {
  it('gives each module found its version and whether it is in-tree, by name, never by place', () => {
    expect(moduleInfo(MODINFO, ['bonding', 'nosuch', 'siw', 'rds', 'nvme-rdma'], R)).to.deep.equal({
      bonding: `(in-tree ${R})`,
      siw: `(out-of-tree /lib/modules/${R}/updates/siw.ko)`,
      rds: `4.0 (in-tree ${R})`,
      'nvme-rdma': `(in-tree ${R})`,
    });
  });

  it('falls back to srcversion, and to the file name when a block has no name field', () => {
    const text = `filename:       /opt/mofed/${R}/mlx5_core.ko.xz\nsrcversion:     ABC123\nfilename:       /lib/modules/${R}/kernel/drivers/infiniband/core/ib_core.ko`;
    expect(moduleInfo(text, ['mlx5_core', 'ib_core'], R)).to.deep.equal({ mlx5_core: `ABC123 (out-of-tree /opt/mofed/${R}/mlx5_core.ko.xz)`, ib_core: `(in-tree ${R})` });
  });

  it('calls a module of another kernel tree out-of-tree, and nothing found nothing', () => {
    expect(moduleInfo(`filename:       /lib/modules/6.12.0/kernel/net/rds/rds.ko\nname:           rds`, ['rds'], R)).to.deep.equal({ rds: '(out-of-tree /lib/modules/6.12.0/kernel/net/rds/rds.ko)' });
    expect(moduleInfo('', ['rds'], R)).to.deep.equal({});
  });
});
