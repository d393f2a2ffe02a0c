// Where the VM lab keeps things: kernels and initramfs (a cache shared by checkouts), and per-lab
// state (per checkout).
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROJECT_ROOT = resolve(fileURLToPath(import.meta.url), '../../..');

export function cacheDir(): string {
  return process.env.RDMA_FAILOVER_CACHE ? resolve(process.env.RDMA_FAILOVER_CACHE) : resolve(PROJECT_ROOT, '.cache');
}

/**
 * Guest kernels, their initramfs, PVH images and siw builds: content-keyed, so one copy serves every
 * checkout on the machine (a CI job on a clean checkout does not download and build them again).
 * RDMA_FAILOVER_KERNEL_CACHE, else RDMA_FAILOVER_CACHE/kernels, else ~/.cache/rdma-failover/kernels.
 */
export function kernelsDir(): string {
  if (process.env.RDMA_FAILOVER_KERNEL_CACHE) return resolve(process.env.RDMA_FAILOVER_KERNEL_CACHE);
  if (process.env.RDMA_FAILOVER_CACHE) return resolve(cacheDir(), 'kernels');
  const home = process.env.XDG_CACHE_HOME || (process.env.HOME ? join(process.env.HOME, '.cache') : '');
  return home ? resolve(home, 'rdma-failover', 'kernels') : resolve(cacheDir(), 'kernels');
}

export function labsDir(): string {
  return resolve(cacheDir(), 'labs');
}
