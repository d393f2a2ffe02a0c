// Booting the kernel's ELF through its PVH entry: which images qualify. A wrong "yes" would hand
// QEMU a kernel it cannot start (every lab up fails); a wrong "no" only costs the bzImage's
// decompression. Synthetic images, byte by byte as the formats define them.
import { expect } from 'chai';
import { bzPayload, hasPvhEntry } from '../../harness/vmlab/pvh.ts';

/** An ELF64 LE with one PT_NOTE segment holding the given notes (name, type). */
function elf(notes: { name: string; type: number }[], opts: { cut?: number } = {}): Buffer {
  const pad = (b: Buffer) => Buffer.concat([b, Buffer.alloc((4 - (b.length % 4)) % 4)]);
  const body = Buffer.concat(
    notes.map((n) => {
      const name = Buffer.from(`${n.name}\0`);
      const h = Buffer.alloc(12);
      h.writeUInt32LE(name.length, 0);
      h.writeUInt32LE(4, 4);
      h.writeUInt32LE(n.type, 8);
      return Buffer.concat([h, pad(name), Buffer.alloc(4)]);
    }),
  );
  const head = Buffer.alloc(64);
  head.writeUInt32BE(0x7f454c46, 0);
  head[4] = 2; // ELFCLASS64
  head[5] = 1; // little endian
  head.writeBigUInt64LE(64n, 0x20); // e_phoff
  head.writeUInt16LE(56, 0x36); // e_phentsize
  head.writeUInt16LE(1, 0x38); // e_phnum
  const ph = Buffer.alloc(56);
  ph.writeUInt32LE(4, 0); // PT_NOTE
  ph.writeBigUInt64LE(120n, 8);
  ph.writeBigUInt64LE(BigInt(body.length), 32);
  const all = Buffer.concat([head, ph, body]);
  return opts.cut ? all.subarray(0, all.length - opts.cut) : all;
}

describe('PVH boot: which kernel images boot without their decompressor', () => {
  it('an ELF with the Xen PHYS32_ENTRY note (18) qualifies', () => {
    expect(hasPvhEntry(elf([{ name: 'Xen', type: 6 }, { name: 'Xen', type: 18 }]))).to.equal(true);
  });

  it('other Xen notes only, or the right type under another name: no', () => {
    expect(hasPvhEntry(elf([{ name: 'Xen', type: 6 }, { name: 'Xen', type: 17 }]))).to.equal(false);
    expect(hasPvhEntry(elf([{ name: 'GNU', type: 18 }]))).to.equal(false);
  });

  it('an image cut short (a decompressor that stopped early) is refused, note or not', () => {
    expect(hasPvhEntry(elf([{ name: 'Xen', type: 18 }], { cut: 8 }))).to.equal(false);
  });

  it('not an ELF64 little-endian image: no', () => {
    const e = elf([{ name: 'Xen', type: 18 }]);
    expect(hasPvhEntry(Buffer.concat([Buffer.from('MZ'), e.subarray(2)]))).to.equal(false);
    const e32 = Buffer.from(e);
    e32[4] = 1;
    expect(hasPvhEntry(e32)).to.equal(false);
  });

  it("a bzImage's payload is found from its setup header; anything else has none", () => {
    const img = Buffer.alloc(8192);
    img[0x1f1] = 3; // setup sectors: the payload area starts at (3 + 1) * 512
    img.write('HdrS', 0x202, 'latin1');
    img.writeUInt16LE(0x20f, 0x206);
    img.writeUInt32LE(100, 0x248);
    img.writeUInt32LE(6, 0x24c);
    Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]).copy(img, 4 * 512 + 100);
    expect([...(bzPayload(img) ?? [])]).to.deep.equal([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
    img.writeUInt32LE(1_000_000, 0x24c); // longer than the file
    expect(bzPayload(img)).to.equal(undefined);
    expect(bzPayload(Buffer.alloc(8192))).to.equal(undefined);
  });
});
