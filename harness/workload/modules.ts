// The modules a workload loads (and only those: see undo.ts), and unloading them without hanging on
// stuck work or pulling a module from under a leaked cm_id.
import type { Node } from '../node/node.ts';
import { FREED_IN_USE, STUCK_SCRIPT, parseStuck, stuckInRdmaNames } from '../health/health.ts';
import { parseCmIds } from '../fabric/rdma.ts';
import { log } from '../log.ts';
import { sleep } from '../clock.ts';
import { CommandRefusedError } from '../node/gate.ts';

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
export async function modulesToLoad(node: Node, wanted: readonly string[], loaded?: ReadonlySet<string>): Promise<string[]> {
  if (!wanted.length) return [];
  // `loaded`: the node's modules just read by the caller. When every wanted one is among them,
  // modprobe would insert nothing: it is not asked (0.26 s on an emulated guest).
  if (loaded && wanted.every((m) => loaded.has(m))) return [];
  const [deps, have] = await Promise.all([node.run(['modprobe', '-a', '--show-depends', ...wanted], { timeoutMs: 30_000 }), loaded ?? loadedModules(node)]);
  return parseShowDepends(deps.stdout).filter((m) => !have.has(m));
}

/**
 * Kernel libraries the storage ULPs pull in that hold no connection, session or export of their own:
 * checksums and T10 protection information, the SCSI core and disk driver, the DNS upcall. A
 * workload leaves them loaded for the rest of the lab session — fabric down unloads them with
 * everything else that appeared since the node's baseline (unloadAppeared) — instead of after every
 * test, where their rmmods were most of a storage test's teardown under emulation (13 modules,
 * 10.5 s, after each iSER test). The ULP's own modules, which do hold state, still go after each test.
 */
export const SESSION_LIBRARIES: ReadonlySet<string> = new Set([
  'scsi_common',
  'scsi_mod',
  'sd_mod',
  't10_pi',
  'crc_t10dif',
  'crct10dif_common',
  'crct10dif_generic',
  'crct10dif_pclmul',
  'crc64',
  'crc64_rocksoft',
  'crc64_rocksoft_generic',
  'crc32c_generic',
  'crc32c_intel',
  'libcrc32c',
  'dns_resolver',
]);

/** Of the modules a workload loads, those it unloads after its test (the rest: SESSION_LIBRARIES). */
export function perTestModules(load: readonly string[]): string[] {
  return load.filter((m) => !SESSION_LIBRARIES.has(m));
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
 * sunrpc) — they are the harness's change too, and they keep our modules loaded. Modules pinned
 * by a count rather than as holders (crypto algorithms) are left to unloadAppeared, at fabric down.
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

/** How long one rmmod may take before it is taken for hung: a module's exit waiting on stuck work. */
export const RMMOD_HUNG_S = 20;

// Each module in order, one line each: "ok NAME", "fail NAME last line of rmmod's error", or
// "hung NAME" and nothing more. An rmmod that waits in its module's exit (ib_iser's destroy_workqueue
// behind an iser_release_work that never gets its conn_stop, M2's RF-07 iSER) sits in D state: no
// signal ends it, so the script does not wait for it. Waiting for it cost the outer bound (105 s),
// and that bound's error dropped the lines of the modules already unloaded.
// A worker runs the rmmods in turn, appending each answer to a private file; the script waits for
// it (no polling: each poll was a fork and an exec, 224 ms a module on an emulated guest, 2.9× a
// plain loop — bench:guest). A watchdog looks once a second: when no answer has come for the
// limit, it signals the script, which reports what came, names the module in flight "hung", and
// ends, leaving it (the health check finds the task; the VM lab reboots the node).
// $1: the limit in seconds; then the modules.
export const RMMOD_EACH = `limit=$1; shift
d=$(mktemp -d "\${TMPDIR:-/tmp}/rf-rmmod.XXXXXX") || exit 1
trap 'rm -rf "$d"' EXIT
: >"$d/p"
(
  for m; do
    echo "start $m" >>"$d/p"
    if rmmod "$m" >"$d/out" 2>&1 </dev/null; then echo "ok $m" >>"$d/p"; else echo "fail $m $(tail -n 1 "$d/out")" >>"$d/p"; fi
  done
) >/dev/null 2>&1 &
w=$!
me=$$
hung=0
trap 'hung=1' USR1
(
  n=-1; s=0
  while sleep 1; do
    c=0; while read -r _; do c=$((c + 1)); done <"$d/p"
    if [ "$c" = "$n" ]; then s=$((s + 1)); else n=$c; s=0; fi
    if [ "$s" -ge "$limit" ]; then kill -USR1 "$me"; exit 0; fi
  done
) >/dev/null 2>&1 &
wd=$!
wait "$w"
kill "$wd" 2>/dev/null
cur=
while read -r what m rest; do
  case $what in
    start) cur=$m ;;
    ok) echo "ok $m"; cur= ;;
    fail) echo "fail $m $rest"; cur= ;;
  esac
done <"$d/p"
if [ "$hung" = 1 ] && [ -n "$cur" ]; then echo "hung $cur"; fi
exit 0`;

/** What rmmod said about a module: undefined when it was unloaded. */
export type RmmodResults = Map<string, string | undefined>;

const HUNG = (m: string, s: number) => `rmmod ${m} did not return within ${s} s: it waits in the module's exit (D state), left as it is`;

/** The lines of RMMOD_EACH, by module; a module without a line was not tried (an rmmod before it hung, or the script was cut off). */
export function parseRmmodEach(text: string, hungS = RMMOD_HUNG_S): RmmodResults {
  const out: RmmodResults = new Map();
  for (const line of text.split('\n')) {
    const m = /^(ok|fail|hung) (\S+) ?(.*)$/.exec(line.trim());
    if (m) out.set(m[2]!, m[1] === 'ok' ? undefined : m[1] === 'hung' ? HUNG(m[2]!, hungS) : m[3] || 'rmmod failed');
  }
  return out;
}

/**
 * rmmod of each module, in the given order, in one round trip (one rmmod per module cost a round
 * trip each: 15 modules for iSER). Every module gets an answer: one after an rmmod that hung, or
 * that the script did not reach, is "not tried".
 */
export async function rmmodEach(node: Node, modules: readonly string[], hungS = RMMOD_HUNG_S): Promise<RmmodResults> {
  if (!modules.length) return new Map();
  const argv = ['sh', '-c', RMMOD_EACH, 'rmmod-each', String(hungS), ...modules];
  const r = await node.exec(argv, { timeoutMs: 30_000 + (hungS + 5) * 1000 + 2_000 * modules.length }).catch((e: Error) => {
    // Stopped in flight because its test stopped (runAction does not start an undo behind a closed
    // gate, but the gate can close during one): not an unload that failed but one not made —
    // thrown, so its undo stays journaled for the restore.
    if (e instanceof CommandRefusedError) throw e;
    return { exitCode: -1, stdout: '', stderr: e.message };
  });
  const res = parseRmmodEach(r.stdout, hungS);
  const hung = /^hung (\S+)/m.exec(r.stdout)?.[1];
  const why = hung ? `rmmod ${hung} hung` : r.exitCode === -1 ? 'the script did not end in time' : `the script ended with exit ${r.exitCode}${r.stderr.trim() ? `: ${r.stderr.trim().split('\n').pop()}` : ''}`;
  for (const m of modules) if (!res.has(m)) res.set(m, `not tried: ${why}`);
  return res;
}

const FREED_SCRIPT = `dmesg 2>/dev/null | grep -A 60 -E '${FREED_IN_USE}' || true`;

/**
 * Of `modules`, those named in the call trace of a FREED_IN_USE warning (health.ts) (a frame "fn+0x.../0x...
 * [module]", or the worker's "Workqueue: ... [module]"), in FREED_SCRIPT's output. After such a
 * warning the module's objects may still be reachable — a cm_id freed twice stays in the RDMA
 * resource table with its owner's name pointing into the module — and unloading the module turns
 * the next walk over them into an oops. Seen on 6.1 in RF-04 NFS (N1, M4): rpcrdma_ep_put's
 * refcount underflow, rpcrdma unloaded by the teardown, then the harness's own `rdma res show
 * cm_id` oopsed in strlen on the unloaded module's address and was killed.
 */
export function freedInUse(text: string, modules: readonly string[]): string[] {
  const want = new Set(modules);
  const hit = new Set<string>();
  const warning = new RegExp(FREED_IN_USE);
  let inTrace = false;
  for (const line of text.split('\n')) {
    if (warning.test(line)) inTrace = true;
    else if (/---\[ end trace|^--$/.test(line.trim())) inTrace = false;
    else if (inTrace) {
      const m = /\[(\w+)\]\s*$/.exec(line);
      if (m && want.has(m[1]!)) hit.add(m[1]!);
    }
  }
  return modules.filter((m) => hit.has(m));
}

/** The modules that own cm_ids now (a kernel id's comm is "[module]"): never unloaded. */
function cmIdOwners(json: string): Set<string> {
  return new Set(parseCmIds(json).map((c) => /^\[(.+)\]$/.exec(c.comm ?? '')?.[1] ?? '').filter(Boolean));
}

async function cmIdModules(node: Node): Promise<Set<string>> {
  const ids = await node.exec(['rdma', '-j', 'res', 'show', 'cm_id'], { timeoutMs: 15_000 }).catch(() => undefined);
  return ids?.exitCode === 0 ? cmIdOwners(ids.stdout) : new Set();
}

/** What an unload decides on, read at once. */
export interface UnloadSurvey {
  boot: string;
  /** tasks in D state in RDMA or ULP code ("comm[pid]"): a module's exit would hang behind them */
  stuck: string[];
  /** /proc/modules, by name (a module's usedBy are its holders) */
  loaded: Map<string, LoadedModule>;
  /** FREED_SCRIPT's output: the kernel log's freed-in-use warnings and their traces */
  freedLog: string;
  /** the modules that own cm_ids; undefined when not read (a task was in D state) */
  owners?: Set<string>;
}

// One round trip for all of it: each read was a round trip to a busy guest, five of them before
// every unload. The cm_ids only when no task is in D state: a walk over a wedged id can hang.
const SURVEY = `cat /proc/sys/kernel/random/boot_id
stuck=$(${STUCK_SCRIPT})
[ -n "$stuck" ] && printf '%s\n' "$stuck"
echo @@@modules; cat /proc/modules
echo @@@freed; ${FREED_SCRIPT}
echo @@@cmids; [ -z "$stuck" ] && rdma -j res show cm_id 2>/dev/null
echo @@@end`;

/** SURVEY's output; undefined when it is cut short (then nothing in it can be trusted). */
export function parseSurvey(text: string): UnloadSurvey | undefined {
  const part = (from: string, to: string) => {
    const a = text.indexOf(`\n${from}\n`);
    const b = text.indexOf(`\n${to}\n`, a + 1);
    return a < 0 || b < 0 ? undefined : text.slice(a + from.length + 2, b + 1);
  };
  const head = text.slice(0, text.indexOf('\n@@@modules\n') + 1);
  const [modules, freedLog, cmids] = [part('@@@modules', '@@@freed'), part('@@@freed', '@@@cmids'), part('@@@cmids', '@@@end')];
  if (!head || modules === undefined || freedLog === undefined || cmids === undefined) return undefined;
  const [boot = '', ...rest] = head.split('\n');
  const tasks = parseStuck(rest.join('\n'));
  return {
    boot: boot.trim(),
    stuck: stuckInRdmaNames(tasks),
    loaded: parseProcModules(modules),
    freedLog,
    ...(tasks.size ? {} : { owners: cmIdOwners(cmids) }),
  };
}

/** The survey, or — when it fails — what the unloads assumed before: nothing stuck, `modules` loaded, nothing freed, no owners. */
export async function surveyUnload(node: Node, modules: readonly string[]): Promise<UnloadSurvey> {
  const r = await node.exec(['sh', '-c', SURVEY, 'unload-survey'], { timeoutMs: 30_000 }).catch(() => undefined);
  const s = r ? parseSurvey(r.stdout) : undefined;
  if (s) return { ...s, owners: s.owners ?? (s.stuck.length ? undefined : await cmIdModules(node)) };
  return { boot: '', stuck: [], loaded: new Map(modules.map((m) => [m, { name: m, refs: 0, usedBy: [] }])), freedLog: '', owners: await cmIdModules(node) };
}

/**
 * Unloads modules the harness loaded (the list modulesToLoad gave, in load order), newest first,
 * each by name (rmmod: never a dependency it did not load) — after the modules loaded since that
 * use them (holdersToUnload). Best effort: a module still in use stays, loudly.
 */
export async function unloadModules(node: Node, modules: readonly string[]): Promise<void> {
  if (!modules.length) return;
  const survey = await surveyUnload(node, modules);
  // A ULP's exit waits for its stuck work (e.g. iser_release_work): rmmod would hang in D
  // state too. Leave the modules; the health check reports the node and the VM lab reboots it.
  if (survey.stuck.length) {
    log.warn({ node: node.name, stuck: survey.stuck.join(', ') }, `not unloading ${modules.join(', ')}: tasks are stuck in RDMA code`);
    return;
  }
  // Left loaded, loudly: a module left on a lab is a change; an oops on someone's machine is worse.
  const freed = freedInUse(survey.freedLog, modules);
  if (freed.length) {
    log.warn({ node: node.name }, `not unloading ${modules.join(', ')}: the kernel reported an object of ${freed.join(', ')} freed while still in use (refcount underflow / use-after-free); its objects may still be reachable, and an unload would turn the next walk over them into an oops`);
    return;
  }
  const ours = modules.filter((m) => survey.loaded.has(m));
  // cm_ids hold no reference on the module that created them: unloading it under a leaked id
  // leaves the id's name pointing into freed module memory, and the next `rdma res show cm_id`
  // oopses (seen on 6.1 after svcrdma ignored ADDR_CHANGE). Keep such modules loaded.
  const owners = survey.owners ?? new Set<string>();
  const holders = new Map([...survey.loaded.values()].map((m) => [m.name, m.usedBy] as const));
  const after = holdersToUnload(ours, holders);
  if (after.length) log.info({ node: node.name }, `also unloading ${after.join(', ')}: loaded since the harness loaded the modules they use`);
  const order = [...after, ...[...ours].reverse()];
  for (const m of order.filter((x) => owners.has(x))) log.warn({ node: node.name }, `not unloading ${m}: cm_ids it created still exist (leaked)`);
  const todo = order.filter((m) => !owners.has(m));
  const results = await rmmodEach(node, todo);
  // A count, not a holder, can keep a module in use for a moment: a crypto tfm pins its algorithm
  // (crc64_rocksoft_generic, a holder of crc64, is free only once crc64_rocksoft, later in the
  // order, is gone), and an RPC transport is destroyed from a workqueue after the unmount
  // (xprt_destroy → xprt_destroy_cb → xprt_rdma_destroy's module_put). What was in use gets one
  // more pass, a second later, when the first pass unloaded something.
  const inUse = todo.filter((m) => /in use/.test(results.get(m) ?? ''));
  if (inUse.length && inUse.length < todo.length) {
    await sleep(1000);
    for (const [m, err] of await rmmodEach(node, inUse)) results.set(m, err);
  }
  const left = order.flatMap((m) => (owners.has(m) ? [m] : results.get(m) !== undefined ? [`${m} (${results.get(m)})`] : []));
  // A module the harness loaded and left is a change left on someone's lab: say so.
  if (left.length) log.warn({ node: node.name }, `modules the harness loaded are still loaded: ${left.join(', ')}`);
}

/** One line of /proc/modules: the name, its reference count, and the modules that use it. */
export interface LoadedModule {
  name: string;
  /** -1 when the kernel shows "-" (a module that cannot be unloaded) */
  refs: number;
  usedBy: string[];
}

/** /proc/modules ("name size refcnt used_by, state address"), by name. */
export function parseProcModules(text: string): Map<string, LoadedModule> {
  const out = new Map<string, LoadedModule>();
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4 || !f[0]) continue;
    const refs = /^\d+$/.test(f[2]!) ? Number(f[2]) : -1;
    out.set(f[0], { name: f[0], refs, usedBy: f[3] === '-' ? [] : f[3]!.split(',').filter(Boolean) });
  }
  return out;
}

/**
 * Of the modules loaded now, those that appeared since `before` (the node's modules when the
 * harness first touched it) and that nothing uses any more — safe to rmmod now, in one pass.
 * `keep`: modules to leave whatever their count (cm_ids they created still exist).
 */
export function appearedUnused(before: ReadonlySet<string>, now: ReadonlyMap<string, LoadedModule>, keep: ReadonlySet<string> = new Set()): string[] {
  return [...now.values()].filter((m) => !before.has(m.name) && !keep.has(m.name) && m.refs === 0 && !m.usedBy.length).map((m) => m.name);
}

/** The node's loaded modules before the harness loaded any, and the boot they belong to. */
export interface ModuleBaseline {
  /** the node's boot id: a baseline says nothing about a later boot */
  boot: string;
  modules: string[];
}

/** Prints the boot id, then one loaded module per line (parseBaseline); builtins only (no fork:
 *  20–50 ms each on a TCG guest). A kernel built without modules has no /proc/modules: none loaded. */
export const BASELINE = 'read -r b < /proc/sys/kernel/random/boot_id && echo "$b" && { [ ! -e /proc/modules ] || while read -r m _; do echo "$m"; done < /proc/modules; }';

export function parseBaseline(stdout: string): ModuleBaseline {
  const [boot = '', ...modules] = stdout.split('\n').map((l) => l.trim()).filter(Boolean);
  return { boot, modules };
}

/**
 * Unloads, in passes until a pass unloads nothing, the modules that appeared on the node since its
 * baseline and that nothing uses: those the kernel loaded on the harness's behalf with no symbol
 * link to the harness's own (crypto's request_module for crc32c/crc64-rocksoft, a daemon's
 * transport), which unloadModules cannot reach. Passes, because a crypto tfm pins its algorithm's
 * module by a count, not as a holder: it is free only once its user is gone. What stays is in use —
 * by a module from before the baseline (crc64_rocksoft binds crc64_rocksoft_generic when that
 * appears) or by the user — and is named. Same boot only; same safety checks as unloadModules.
 * On a shared real lab, a module its owner loads while the run goes on looks the same: it is
 * unloaded only if unused, and logged.
 */
export async function unloadAppeared(node: Node, baseline: ModuleBaseline): Promise<{ unloaded: string[]; left: string[] }> {
  const unloaded: string[] = [];
  const survey = await surveyUnload(node, []);
  if (survey.boot !== baseline.boot || survey.stuck.length) return { unloaded, left: [] };
  // kept whatever their count: the modules whose cm_ids still exist, and those named in a
  // freed-while-in-use warning (see freedInUse)
  const owners = survey.owners ?? new Set<string>();
  const freed = freedInUse(survey.freedLog, [...survey.loaded.keys()]);
  const keep = new Set([...owners, ...freed]);
  const before = new Set(baseline.modules);
  const failed = new Set<string>();
  let now = survey.loaded;
  for (let pass = 0; pass < 8; pass++) {
    if (pass > 0) now = parseProcModules((await node.run(['cat', '/proc/modules'], { timeoutMs: 15_000 })).stdout);
    const todo = appearedUnused(before, now, keep).filter((m) => !failed.has(m));
    if (!todo.length) break;
    for (const [m, err] of await rmmodEach(node, todo)) {
      if (err === undefined) unloaded.push(m);
      else failed.add(m);
    }
  }
  const left = [...now.values()].filter((m) => !before.has(m.name) && !unloaded.includes(m.name)).map((m) => `${m.name} (${m.usedBy.length ? `used by ${m.usedBy.join(' ')}` : freed.includes(m.name) ? 'the kernel reported its object freed while in use' : owners.has(m.name) ? 'its cm_ids still exist' : `${m.refs} reference(s)`})`);
  if (unloaded.length) log.info({ node: node.name }, `also unloaded ${unloaded.join(', ')}: loaded since the harness began, unused now`);
  if (left.length) log.warn({ node: node.name }, `modules loaded since the harness began and still in use are left: ${left.join(', ')}`);
  return { unloaded, left };
}
