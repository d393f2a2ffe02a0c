// Where the VM lab keeps things: kernels and initramfs (cache), and per-lab state.
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROJECT_ROOT = resolve(fileURLToPath(import.meta.url), '../../..');

export function cacheDir(): string {
  return process.env.RDMA_FAILOVER_CACHE ? resolve(process.env.RDMA_FAILOVER_CACHE) : resolve(PROJECT_ROOT, '.cache');
}

export function kernelsDir(): string {
  return resolve(cacheDir(), 'kernels');
}

export function labsDir(): string {
  return resolve(cacheDir(), 'labs');
}
