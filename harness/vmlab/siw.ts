// siw (soft iWARP) for guest kernels built without it. Debian's kernels say `# CONFIG_RDMA_SIW is
// not set`, so the module is built out of tree: the siw sources of the same release (its
// linux-source package) against its headers package, both fetched with `apt-get download` and
// unpacked in the cache — never installed on the controller. The module lands in the unpacked
// kernel's updates/ directory and depmod makes the guests' modprobe find it.
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { aptFor, KernelFetchError, runOnHost, type GuestKernel } from './kernel.ts';
import { kernelsDir } from './paths.ts';
import { softRdma } from '../fabric/fabric.ts';
import type { Topology } from '../topology/schema.ts';

/** Does any bond of this topology carry siw? */
export function needsSiw(t: Topology): boolean {
  return t.nodes.some((n) => n.bonds?.some((b) => softRdma(b) === 'siw'));
}

/** Does this kernel's modules tree have siw (built in or as a module)? */
export function hasSiw(k: GuestKernel): boolean {
  const dir = join(k.modulesRoot, k.version);
  const listed = (f: string) => existsSync(join(dir, f)) && /(^|\/)siw\.ko(\.[a-z]+)?:?\s*/m.test(readFileSync(join(dir, f), 'utf8'));
  return listed('modules.dep') || listed('modules.builtin');
}

/** "6.1.0-57-amd64" → "6.1"; "6.12.95+deb12-amd64" → "6.12": the linux-source-X.Y package. */
export function sourceSeries(release: string): string {
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (!m) throw new KernelFetchError(`cannot tell the source series of kernel release "${release}"`);
  return `${m[1]}.${m[2]}`;
}

/** The headers package's own version and the packages it needs to build against (its -common part,
 *  pinned to the same version, and kbuild), from `apt-cache show` output. */
export function headersPackages(show: string, headers: string): { version: string; pkgs: string[] } {
  const stanza = show.split(/\n\n/)[0] ?? '';
  const version = /^Version: (\S+)/m.exec(stanza)?.[1];
  if (!version) throw new KernelFetchError(`apt-cache show ${headers} gave no Version`);
  const deps = (/^Depends: (.*)$/m.exec(stanza)?.[1] ?? '').split(',').map((d) => d.trim());
  const pkgs = [`${headers}=${version}`];
  for (const d of deps) {
    const m = /^(linux-(?:headers|kbuild)-\S+)(?: \((=|>=) ([^)]+)\))?/.exec(d);
    if (!m) continue;
    // "=" pins the -common part to this build; kbuild says ">=": the candidate does.
    pkgs.push(m[2] === '=' ? `${m[1]}=${m[3]}` : m[1]!);
  }
  if (!pkgs.some((p) => p.startsWith('linux-kbuild-'))) throw new KernelFetchError(`${headers} does not depend on a linux-kbuild package (Depends: ${deps.join(', ')})`);
  return { version, pkgs };
}

/** Makes siw loadable in the guests; returns what it did. Throws (with the reason) when it cannot. */
export async function ensureSiw(k: GuestKernel, log: (m: string) => void = () => undefined): Promise<string> {
  if (hasSiw(k)) return `siw is in ${k.version}'s modules`;
  const choice = k.id.split(':')[0];
  if (!k.package || (choice !== 'debian-stable' && choice !== 'debian-backports')) {
    throw new KernelFetchError(`kernel ${k.id} has no siw module (CONFIG_RDMA_SIW): build it with CONFIG_RDMA_SIW=m, or put siw.ko into ${join(k.modulesRoot, k.version)} and run depmod`);
  }
  const apt = await aptFor(choice);
  const headers = `linux-headers-${k.version}`;
  const { version, pkgs } = headersPackages(await runOnHost(['apt-cache', ...apt, 'show', '--no-all-versions', headers], `apt-cache show ${headers}`), headers);
  const series = sourceSeries(k.version);
  const source = `linux-source-${series}`;
  const work = join(kernelsDir(), `.siw-${k.version}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(join(work, 'root'), { recursive: true });
  try {
    log(`building siw.ko for ${k.version}: ${k.package} has no siw (CONFIG_RDMA_SIW is not set); fetching ${source}=${version} and its headers (unpacked in ${work}, not installed)`);
    await runOnHost(['sh', '-c', 'cd "$1" && shift && exec apt-get "$@"', 'fetch', work, ...apt, 'download', ...pkgs, `${source}=${version}`], `downloading ${source} and ${headers}`, 900_000);
    const debs = readdirSync(work).filter((f) => f.endsWith('.deb'));
    for (const d of debs.filter((f) => !f.startsWith(`${source}_`))) await runOnHost(['dpkg-deb', '-x', join(work, d), join(work, 'root')], `unpacking ${d}`);
    const srcDeb = debs.find((f) => f.startsWith(`${source}_`));
    if (!srcDeb) throw new KernelFetchError(`apt-get download ${source}=${version} left no .deb in ${work}`);
    // Only the siw directory of the source tarball: seconds, not the whole tree.
    const siwDir = `${source}/drivers/infiniband/sw/siw`;
    await runOnHost(
      ['sh', '-c', 'dpkg-deb --fsys-tarfile "$1" | tar -xO "./usr/src/$2.tar.xz" | xz -dc | tar -x -C "$3" "$4"', 'extract', join(work, srcDeb), source, work, siwDir],
      `extracting ${siwDir} from ${srcDeb}`,
    );
    const hdir = join(work, 'root', 'usr', 'src', headers);
    // The arch headers include their -common part by absolute path (/usr/src/…): point it at ours.
    const mk = join(hdir, 'Makefile');
    writeFileSync(mk, readFileSync(mk, 'utf8').replace(/^include \/usr\/src\//m, `include ${join(work, 'root', 'usr', 'src')}/`));
    const src = join(work, siwDir);
    // From 6.12 Debian's headers ship a BTF-only vmlinux, so kbuild's last step (Makefile.modfinal)
    // runs pahole on the module: without dwarves that was "Error 127". A test module needs no BTF
    // (it loads without a .BTF section), so BTF generation is switched off for this build.
    await runOnHost(
      ['nice', '-n', '10', 'make', '-C', hdir, `M=${src}`, 'CONFIG_RDMA_SIW=m', 'CONFIG_DEBUG_INFO_BTF_MODULES=', `-j${availableParallelism()}`, 'modules'],
      `building siw.ko against ${headers}`,
      900_000,
    );
    const updates = join(k.modulesRoot, k.version, 'updates');
    mkdirSync(updates, { recursive: true });
    // Debug info is 9/10 of the module; the guests load it over 9p.
    await runOnHost(['strip', '--strip-debug', join(src, 'siw.ko')], 'strip siw.ko');
    copyFileSync(join(src, 'siw.ko'), join(updates, 'siw.ko'));
    await runOnHost(['depmod', '-b', resolve(k.modulesRoot, '..', '..'), k.version], 'depmod');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  if (!hasSiw(k)) throw new KernelFetchError(`siw.ko was built but depmod does not list it for ${k.version}`);
  return `siw.ko built for ${k.version} from ${source}=${version} (updates/siw.ko)`;
}
