// Guest kernels: Debian's packaged kernel unpacked into the cache (never installed into the host's
// /boot), or a kernel image + modules tree the user supplies. The result is a directory with
// vmlinuz and lib/modules/VERSION (with modules.dep).
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { LocalNode } from '../node/local.ts';
import { kernelsDir } from './paths.ts';

export type KernelChoice = 'debian-stable' | 'debian-backports' | { image: string; modules: string; name?: string };

export interface GuestKernel {
  /** e.g. debian-stable:6.1.0-56-amd64 */
  id: string;
  version: string;
  image: string;
  /** directory that holds VERSION/ (mounted at /lib/modules in the guest) */
  modulesRoot: string;
  /** the Debian package it came from, if any */
  package?: string;
}

const host = new LocalNode('controller');

export class KernelFetchError extends Error {
  override name = 'KernelFetchError';
}

/** Debian suites a kernel can come from; backports use a private source list (never the machine's). */
const SOURCES: Record<'debian-backports', { suites: string; component: string }> = {
  'debian-backports': { suites: 'bookworm-backports', component: 'main' },
};

async function run(argv: string[], what: string, timeoutMs = 600_000): Promise<string> {
  const r = await host.exec(argv, { timeoutMs });
  if (r.exitCode !== 0) throw new KernelFetchError(`${what} failed (${argv.join(' ')}): ${r.stderr.trim().split('\n').slice(-4).join(' | ')}`);
  return r.stdout;
}

/** apt-get options that use only our private lists and cache (for backports). */
function privateApt(dir: string): string[] {
  return [
    '-o', `Dir::Etc::sourcelist=${join(dir, 'sources.list')}`,
    '-o', 'Dir::Etc::sourceparts=-',
    '-o', `Dir::State::Lists=${join(dir, 'lists')}`,
    '-o', `Dir::Cache=${join(dir, 'cache')}`,
    '-o', 'APT::Get::List-Cleanup=0',
  ];
}

/** The apt-get/apt-cache options that see the packages of a Debian kernel choice (none for stable;
 *  private, freshly updated lists for backports). */
export async function aptFor(choice: 'debian-stable' | 'debian-backports'): Promise<string[]> {
  if (choice === 'debian-stable') return [];
  const src = SOURCES[choice];
  const dir = join(kernelsDir(), '.apt-' + choice);
  mkdirSync(join(dir, 'lists', 'partial'), { recursive: true });
  mkdirSync(join(dir, 'cache', 'archives', 'partial'), { recursive: true });
  writeFileSync(join(dir, 'sources.list'), `deb http://deb.debian.org/debian ${src.suites} ${src.component}\n`);
  const apt = privateApt(dir);
  await run(['apt-get', ...apt, 'update', '-qq'], `apt-get update (${src.suites}, private lists)`);
  return apt;
}

async function resolvePackage(choice: 'debian-stable' | 'debian-backports'): Promise<{ pkg: string; apt: string[] }> {
  if (choice === 'debian-stable') {
    // apt-cache takes 0.8 s here, at every lab up: its answer is kept until apt's state changes.
    const stamp = aptStamp();
    const memo = join(kernelsDir(), '.debian-stable.json');
    const kept = readMemo(memo);
    if (kept?.stamp === stamp) return { pkg: kept.pkg, apt: [] };
    const out = await run(['apt-cache', 'depends', 'linux-image-amd64'], 'looking up Debian stable kernel');
    const pkg = /Depends: (linux-image-[0-9][^\s]*-amd64)\b/.exec(out)?.[1];
    if (!pkg) throw new KernelFetchError(`cannot find the kernel package behind linux-image-amd64:\n${out}`);
    mkdirSync(kernelsDir(), { recursive: true });
    writeFileSync(memo, JSON.stringify({ stamp, pkg }) + '\n');
    return { pkg, apt: [] };
  }
  const src = SOURCES[choice];
  const apt = await aptFor(choice);
  const out = await run(['apt-cache', ...apt, 'depends', `linux-image-amd64/${src.suites}`], 'looking up backports kernel');
  const pkg = /Depends: (linux-image-[0-9][^\s]*-amd64)\b/.exec(out)?.[1];
  if (!pkg) throw new KernelFetchError(`cannot find the kernel package in ${src.suites}:\n${out}`);
  return { pkg, apt };
}

/** What apt-cache's answer depends on: the package lists (apt-get update), dpkg's status and apt's
 *  pinning (which picks the candidate without a list changing). */
function aptStamp(): string {
  const files = ['/var/lib/dpkg/status', '/etc/apt/preferences'];
  for (const dir of ['/var/lib/apt/lists', '/etc/apt/preferences.d']) {
    if (existsSync(dir)) files.push(...readdirSync(dir).map((f) => join(dir, f)));
  }
  return files.map((f) => `${f}:${existsSync(f) ? statSync(f).mtimeMs : '-'}`).join('|');
}

function readMemo(file: string): { stamp: string; pkg: string } | undefined {
  try {
    const m = JSON.parse(readFileSync(file, 'utf8')) as { stamp?: unknown; pkg?: unknown };
    return typeof m.stamp === 'string' && typeof m.pkg === 'string' ? { stamp: m.stamp, pkg: m.pkg } : undefined;
  } catch {
    return undefined;
  }
}

function unpacked(dir: string): GuestKernel | undefined {
  const meta = join(dir, 'kernel.json');
  if (!existsSync(meta)) return undefined;
  const saved = JSON.parse(readFileSync(meta, 'utf8')) as GuestKernel;
  // The paths are this directory's own (the cache may have moved since it was unpacked).
  const k: GuestKernel = { ...saved, image: join(dir, 'root', 'boot', `vmlinuz-${saved.version}`), modulesRoot: join(dir, 'root', 'lib', 'modules') };
  return existsSync(k.image) && existsSync(join(k.modulesRoot, k.version, 'modules.dep')) ? k : undefined;
}

export async function prepareKernel(choice: KernelChoice = 'debian-stable', log: (m: string) => void = () => undefined): Promise<GuestKernel> {
  if (typeof choice === 'object') return userKernel(choice);
  const { pkg, apt } = await resolvePackage(choice);
  const dir = join(kernelsDir(), pkg);
  const have = unpacked(dir);
  if (have) return have;
  log(`fetching ${pkg} (Debian package, unpacked into ${dir}; the host's /boot is not touched)`);
  const tmp = `${dir}.partial`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  await run(['sh', '-c', 'cd "$1" && shift && exec apt-get "$@"', 'fetch', tmp, ...apt, 'download', pkg], `downloading ${pkg}`);
  const deb = readdirSync(tmp).find((f) => f.endsWith('.deb'));
  if (!deb) throw new KernelFetchError(`apt-get download ${pkg} left no .deb in ${tmp}`);
  await run(['dpkg-deb', '-x', join(tmp, deb), join(tmp, 'root')], `unpacking ${deb}`);
  const version = readdirSync(join(tmp, 'root', 'lib', 'modules'))[0];
  if (!version) throw new KernelFetchError(`${deb} has no lib/modules/VERSION`);
  // The package ships no modules.dep (the postinst would make it): make it here.
  await run(['depmod', '-b', join(tmp, 'root'), version], 'depmod');
  rmSync(join(tmp, deb));
  renameSync(tmp, dir);
  const k: GuestKernel = {
    id: `${choice}:${version}`,
    version,
    image: join(dir, 'root', 'boot', `vmlinuz-${version}`),
    modulesRoot: join(dir, 'root', 'lib', 'modules'),
    package: pkg,
  };
  writeFileSync(join(dir, 'kernel.json'), JSON.stringify(k, null, 2));
  return k;
}

function userKernel(c: { image: string; modules: string; name?: string }): GuestKernel {
  const image = resolve(c.image);
  const modules = resolve(c.modules);
  if (!existsSync(image)) throw new KernelFetchError(`kernel image ${image} does not exist`);
  // Accept either lib/modules (holding VERSION/) or lib/modules/VERSION itself.
  let root = modules;
  let version = readdirSync(modules).find((v) => existsSync(join(modules, v, 'modules.dep')));
  if (!version && existsSync(join(modules, 'modules.dep'))) {
    root = resolve(modules, '..');
    version = modules.split('/').pop() ?? '';
  }
  if (!version) throw new KernelFetchError(`${modules} holds no VERSION/modules.dep: run depmod -b for your modules tree`);
  return { id: `${c.name ?? 'custom'}:${version}`, version, image, modulesRoot: root };
}

/** Runs a command on the controller; a non-zero exit is a KernelFetchError naming `what`. */
export const runOnHost = run;
