// Unloading the ULP modules a workload loaded (see undo.ts), without hanging on stuck work or
// pulling a module from under a leaked cm_id.
import type { Node } from '../node/node.ts';
import { stuckInRdma } from '../health/health.ts';
import { parseCmIds } from '../fabric/rdma.ts';
import { log } from '../log.ts';

/** Best effort: a module still in use stays. */
export async function unloadModules(node: Node, modules: readonly string[]): Promise<void> {
  if (!modules.length) return;
  // A ULP's exit waits for its stuck work (e.g. iser_release_work): modprobe -r would hang in D
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
  for (const m of [...modules].reverse()) {
    if (owners.has(`[${m}]`)) {
      log.warn({ node: node.name }, `not unloading ${m}: cm_ids it created still exist (leaked)`);
      continue;
    }
    await node.exec(['modprobe', '-r', m], { timeoutMs: 60_000 }).catch(() => undefined);
  }
}
