// Kernel module dependency order from modules.dep (pure).

export type ModuleDeps = Map<string, { path: string; deps: string[] }>;

/** modules.dep lines: "kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/netfs/netfs.ko" */
export function parseModulesDep(text: string): ModuleDeps {
  const out: ModuleDeps = new Map();
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i < 0) continue;
    const path = line.slice(0, i).trim();
    const deps = line.slice(i + 1).trim().split(/\s+/).filter(Boolean);
    out.set(moduleName(path), { path, deps: deps.map(moduleName) });
  }
  return out;
}

export function moduleName(path: string): string {
  const base = path.split('/').pop() ?? path;
  return base.replace(/\.ko(\.(xz|zst|gz))?$/, '').replace(/-/g, '_');
}

/** modules.builtin lines: "kernel/drivers/virtio/virtio_pci.ko" */
export function parseBuiltin(text: string): Set<string> {
  return new Set(text.split('\n').filter(Boolean).map(moduleName));
}

/** The modules to insert, dependencies first, each once; built-in ones are skipped.
 *  Throws on a module the kernel does not have. */
export function loadOrder(deps: ModuleDeps, wanted: readonly string[], builtin: ReadonlySet<string> = new Set()): { name: string; path: string }[] {
  const out: { name: string; path: string }[] = [];
  const seen = new Set<string>();
  const visit = (name: string, chain: string[]) => {
    const n = name.replace(/-/g, '_');
    if (seen.has(n) || builtin.has(n)) return;
    const m = deps.get(n);
    if (!m) throw new Error(`module ${n} is not in modules.dep${chain.length ? ` (needed by ${chain.join(' → ')})` : ''}`);
    seen.add(n);
    for (const d of m.deps) visit(d, [...chain, n]);
    out.push({ name: n, path: m.path });
  };
  for (const w of wanted) visit(w, []);
  return out;
}
