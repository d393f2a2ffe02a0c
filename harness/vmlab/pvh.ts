// Guests boot the kernel's uncompressed ELF through its PVH entry point rather than the bzImage:
// under emulation the bzImage's own decompressor spends ~4.5 s of every boot unpacking itself
// (measured with Debian's 6.1 kernel: first kernel line 5.0 s after QEMU started, 0.45 s with PVH).
// The ELF is unpacked once per kernel image and cached; a kernel without a PVH entry (or a payload
// this cannot unpack) boots from its bzImage as before.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { kernelsDir } from './paths.ts';

/** The decompressor for a bzImage payload, by its magic bytes. */
const FORMATS: { magic: number[]; argv: string[] }[] = [
  { magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], argv: ['xz', '-dc', '--single-stream'] },
  { magic: [0x28, 0xb5, 0x2f, 0xfd], argv: ['zstd', '-dcq'] },
  { magic: [0x1f, 0x8b], argv: ['gzip', '-dc'] },
  { magic: [0x02, 0x21, 0x4c, 0x18], argv: ['lz4', '-dc'] },
  { magic: [0x5d, 0x00, 0x00], argv: ['xz', '-dc', '--format=lzma'] },
];

/** Where the compressed kernel sits in a bzImage (boot protocol ≥ 2.08: payload_offset/length). */
export function bzPayload(img: Buffer): Buffer | undefined {
  if (img.length < 0x250 || img.toString('latin1', 0x202, 0x206) !== 'HdrS' || img.readUInt16LE(0x206) < 0x208) return undefined;
  const setupSects = img[0x1f1] || 4;
  const start = (setupSects + 1) * 512 + img.readUInt32LE(0x248);
  const len = img.readUInt32LE(0x24c);
  return start + len <= img.length ? img.subarray(start, start + len) : undefined;
}

/**
 * Is this a whole ELF64 image (every segment inside the file) with a PVH entry point — the Xen ELF
 * note XEN_ELFNOTE_PHYS32_ENTRY (18), which QEMU needs to boot an uncompressed kernel?
 */
export function hasPvhEntry(elf: Buffer): boolean {
  if (elf.length < 64 || elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2 || elf[5] !== 1) return false;
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const phentsize = elf.readUInt16LE(0x36);
  const phnum = elf.readUInt16LE(0x38);
  if (phoff + phnum * phentsize > elf.length) return false;
  let pvh = false;
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    const type = elf.readUInt32LE(ph);
    const off = Number(elf.readBigUInt64LE(ph + 8));
    const size = Number(elf.readBigUInt64LE(ph + 32));
    if (off + size > elf.length) return false; // cut short: not a whole kernel
    if (type !== 4) continue; // PT_NOTE
    for (let p = off; p + 12 <= off + size; ) {
      const namesz = elf.readUInt32LE(p);
      const descsz = elf.readUInt32LE(p + 4);
      const ntype = elf.readUInt32LE(p + 8);
      const name = elf.toString('latin1', p + 12, p + 12 + Math.max(0, namesz - 1));
      if (name === 'Xen' && ntype === 18) pvh = true;
      p += 12 + align4(namesz) + align4(descsz);
    }
  }
  return pvh;
}

const align4 = (n: number) => (n + 3) & ~3;

/** Runs a decompressor over `input` into `out`; resolves with its exit code (-1: it could not start). */
function unpack(argv: string[], input: Buffer, out: string): Promise<number> {
  return new Promise((resolve) => {
    const fd = openSync(out, 'w');
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', fd, 'ignore'] });
    child.on('error', () => resolve(-1));
    child.on('close', (code) => {
      closeSync(fd);
      resolve(code ?? -1);
    });
    // trailing bytes after the stream make some decompressors complain after writing everything
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input);
  });
}

/**
 * The uncompressed, PVH-bootable ELF of a bzImage, unpacked into the kernel cache's pvh/ (once per
 * image), or undefined when the image cannot be booted that way. `why` receives the reason then.
 */
export async function pvhKernel(bzImage: string, why: (m: string) => void = () => undefined): Promise<string | undefined> {
  const cacheDir = join(kernelsDir(), 'pvh');
  const img = readFileSync(bzImage);
  const out = join(cacheDir, `${createHash('sha256').update(img).digest('hex').slice(0, 16)}.vmlinux`);
  if (existsSync(out)) return out;
  const payload = bzPayload(img);
  if (!payload) return void why(`${bzImage} is not a bzImage with a payload (boot protocol 2.08+)`);
  const fmt = FORMATS.find((f) => f.magic.every((b, i) => payload[i] === b));
  if (!fmt) return void why(`${bzImage}: unknown compression of the kernel payload`);
  mkdirSync(cacheDir, { recursive: true });
  const tmp = `${out}.partial`;
  try {
    const code = await unpack(fmt.argv, payload, tmp);
    if (code === -1) return void why(`${fmt.argv[0]} is not installed`);
    // A non-zero exit may only be trailing bytes; the ELF check decides whether it is whole.
    if (!hasPvhEntry(readFileSync(tmp))) return void why(`${bzImage}: no PVH entry point (CONFIG_PVH), or the unpacked kernel is incomplete (${fmt.argv[0]} exit ${code})`);
    renameSync(tmp, out);
    return out;
  } finally {
    rmSync(tmp, { force: true });
  }
}
