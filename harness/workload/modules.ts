// The modules a workload loads (and only those: see undo.ts), and unloading them without hanging on
// stuck work or pulling a module from under a leaked cm_id.
import type { Node } from '../node/node.ts';
import { stuckInRdma } from '../health/health.ts';
import { parseCmIds } from '../fabric/rdma.ts';
import { log } from '../log.ts';

/**
 * Module names from `modprobe --show-depends` ("insmod PATH/name.ko[.xz] [params]", "builtin name"),
 * in load order (dependencies first), each once; builtins are left out (they never unload).
 */
export function parseShowDepends(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^insmod\s+(\S+)/.exec(line.trim());
    if (!m) continue;
    const name = m[1]!.split('/').pop()!.replace(/\.ko(\.\w+)?$/, '').replaceAll('-', '_');
    if (!out.includes(name)) out.push(name);
  }
  return out;
}

/**
 * What `modprobe -a WANTED` would insert that is not loaded yet — dependencies and soft
 * dependencies included, dependencies first. Journal this list before loading: `modprobe -r`
 * would also remove any unused dependency, a module the lab's owner loaded among them.
 */
export async function modulesToLoad(node: Node, wanted: readonly string[]): Promise<string[]> {
  if (!wanted.length) return [];
  const [deps, have] = await Promise.all([node.run(['modprobe', '-a', '--show-depends', ...wanted], { timeoutMs: 30_000 }), loadedModules(node)]);
  return parseShowDepends(deps.stdout).filter((m) => !have.has(m));
}

/** The modules loaded now (/proc/modules). */
export async function loadedModules(node: Node): Promise<Set<string>> {
  const r = await node.run(['cat', '/proc/modules'], { timeoutMs: 15_000 });
  return new Set(r.stdout.split('\n').map((l) => l.split(' ')[0] ?? '').filter(Boolean));
}

/**
 * The modules loaded after ours that use them (their holders, and the holders' holders), in an
 * order rmmod accepts: each after every module that holds it. None of them can predate the harness:
 * a module is loaded after the modules it uses, and ours were not loaded before we loaded them. The
 * run loads them on our behalf (iscsid's iscsi_tcp on iser's libiscsi, mount's auth_rpcgss on
 * sunrpc) — they are the harness's change too, and they keep our modules loaded. Not reached: a
 * holder also pinned by one of ours through a crypto tfm (crc64_rocksoft_generic, held by
 * crc64_rocksoft until that unloads — measured: it stays), and crypto modules that hold none of ours.
 */
export function holdersToUnload(ours: readonly string[], holders: ReadonlyMap<string, readonly string[]>): string[] {
  const found: string[] = [];
  const frontier = [...ours];
  while (frontier.length) {
    for (const h of holders.get(frontier.shift()!) ?? []) {
      if (ours.includes(h) || found.includes(h)) continue;
      found.push(h);
      frontier.push(h);
    }
  }
  const order: string[] = [];
  let left = [...found];
  while (left.length) {
    // unloadable once every holder of it is gone (or was never one we unload)
    const ready = left.filter((m) => (holders.get(m) ?? []).every((h) => order.includes(h) || !found.includes(h)));
    if (!ready.length) break; // a cycle cannot happen; stop rather than loop
    order.push(...ready);
    left = left.filter((m) => !ready.includes(m));
  }
  return order;
}

/** `/sys/module/M/holders` of each module, in one round trip (module names are arguments, not script). */
const HOLDERS = 'for m; do printf "%s:" "$m"; ls "/sys/module/$m/holders" 2>/dev/null | tr "\\n" " "; echo; done';

export function parseHolders(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    out.set(line.slice(0, i), line.slice(i + 1).split(/\s+/).filter(Boolean));
  }
  return out;
}

async function holdersMap(node: Node, start: readonly string[]): Promise<Map<string, string[]>> {
  const map = new Map<string, string[]>();
  let ask = [...start];
  while (ask.length) {
    const r = await node.exec(['sh', '-c', HOLDERS, 'holders', ...ask], { timeoutMs: 15_000 });
    if (r.exitCode !== 0) break;
    for (const [m, hs] of parseHolders(r.stdout)) map.set(m, hs);
    ask = [...new Set([...map.values()].flat())].filter((m) => !map.has(m));
  }
  return map;
}

/**
 * Unloads modules the harness loaded (the list modulesToLoad gave, in load order), newest first,
 * each by name (rmmod: never a dependency it did not load) — after the modules loaded since that
 * use them (holdersToUnload). Best effort: a module still in use stays, loudly.
 */
export async function unloadModules(node: Node, modules: readonly string[]): Promise<void> {
  if (!modules.length) return;
  // A ULP's exit waits for its stuck work (e.g. iser_release_work): rmmod would hang in D
  // state too. Leave the modules; the health check reports the node and the VM lab reboots it.
  const stuck = await stuckInRdma(node).catch(() => []);
  if (stuck.length) {
    log.warn({ node: node.name, stuck: stuck.join(', ') }, `not unloading ${modules.join(', ')}: tasks are stuck in RDMA code`);
    return;
  }
  // cm_ids hold no reference on the module that created them: unloading it under a leaked id
  // leaves the id's name pointing into freed module memory, and the next `rdma res show cm_id`
  // oopses (seen on 6.1 after svcrdma ignored ADDR_CHANGE). Keep such modules loaded.
  const ids = await node.exec(['rdma', '-j', 'res', 'show', 'cm_id'], { timeoutMs: 15_000 }).catch(() => undefined);
  const owners = new Set(ids?.exitCode === 0 ? parseCmIds(ids.stdout).map((c) => c.comm ?? '') : []);
  const loaded = await loadedModules(node).catch(() => new Set(modules));
  const ours = modules.filter((m) => loaded.has(m));
  const after = holdersToUnload(ours, await holdersMap(node, ours).catch(() => new Map<string, string[]>()));
  if (after.length) log.info({ node: node.name }, `also unloading ${after.join(', ')}: loaded since the harness loaded the modules they use`);
  const left: string[] = [];
  for (const m of [...after, ...[...ours].reverse()]) {
    if (owners.has(`[${m}]`)) {
      log.warn({ node: node.name }, `not unloading ${m}: cm_ids it created still exist (leaked)`);
      left.push(m);
      continue;
    }
    const r = await node.exec(['rmmod', m], { timeoutMs: 60_000 }).catch((e: Error) => ({ exitCode: -1, stderr: e.message }));
    if (r.exitCode !== 0) left.push(`${m} (${r.stderr.trim().split('\n').pop() || `exit ${r.exitCode}`})`);
  }
  // A module the harness loaded and left is a change left on someone's lab: say so.
  if (left.length) log.warn({ node: node.name }, `modules the harness loaded are still loaded: ${left.join(', ')}`);
}
