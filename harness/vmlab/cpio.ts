// A minimal cpio "newc" writer: enough for an initramfs (directories, files, symlinks).
import { gzipSync } from 'node:zlib';

export interface CpioEntry {
  path: string;
  type: 'dir' | 'file' | 'symlink';
  mode?: number;
  data?: Buffer;
  target?: string;
}

function header(ino: number, mode: number, size: number, nameLen: number): string {
  const f = (n: number) => n.toString(16).padStart(8, '0');
  return '070701' + f(ino) + f(mode) + f(0) + f(0) + f(1) + f(0) + f(size) + f(0) + f(0) + f(0) + f(0) + f(nameLen) + f(0);
}

const pad4 = (n: number) => (4 - (n % 4)) % 4;

export function cpioNewc(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  const push = (name: string, mode: number, data: Buffer) => {
    const nameBuf = Buffer.from(name + '\0');
    const h = Buffer.from(header(ino++, mode, data.length, nameBuf.length), 'ascii');
    parts.push(h, nameBuf, Buffer.alloc(pad4(h.length + nameBuf.length)), data, Buffer.alloc(pad4(data.length)));
  };
  for (const e of entries) {
    const name = e.path.replace(/^\/+/, '');
    if (e.type === 'dir') push(name, 0o040000 | (e.mode ?? 0o755), Buffer.alloc(0));
    else if (e.type === 'symlink') push(name, 0o120000 | 0o777, Buffer.from(e.target ?? ''));
    else push(name, 0o100000 | (e.mode ?? 0o644), e.data ?? Buffer.alloc(0));
  }
  push('TRAILER!!!', 0, Buffer.alloc(0));
  return Buffer.concat(parts);
}

export function gzipCpio(entries: readonly CpioEntry[]): Buffer {
  return gzipSync(cpioNewc(entries), { level: 6 });
}
