// What a workload changed on a lab, and how to undo it — written to the controller's disk *before*
// each change (a killed run is undone by the next one), run newest first at teardown. A workload
// creates only objects it named itself and records each one here; what it found in place (a user's
// target, export, daemon or module) it never records, so it is never removed.
import { randomUUID } from 'node:crypto';
import { span } from '../clock.ts';
import { clearJournal, readJournal, writeJournal } from '../journal.ts';
import type { Lab } from '../lab/lab.ts';
import { CommandRefusedError, closedGate } from '../node/gate.ts';
import { NodeUnreachableError } from '../node/node.ts';
import { unloadModules } from './modules.ts';

interface UndoCommon {
  id: string;
  owner: string;
  node: string;
  what: string;
  /** the node's boot id when the change was made: kernel state (mounts, configfs, exports,
   *  daemons, modules) does not outlive a reboot, so its undo is moot in a later boot */
  boot?: string;
  /** the change is on disk and outlives a reboot: undone whatever the boot (its undo is idempotent) */
  persists?: boolean;
}

export type UndoAction =
  /** a command on the node (a small script with its arguments: data, never built from values) */
  | (UndoCommon & { kind: 'argv'; argv: string[] })
  /** modules the workload loaded (unloaded with the safety checks of unloadModules) */
  | (UndoCommon & { kind: 'modules'; modules: string[] });

type UndoSpec = UndoAction extends infer A ? (A extends UndoAction ? Omit<A, 'id' | 'owner' | 'boot'> : never) : never;

const KIND = 'undo';

function entries(lab: string): UndoAction[] {
  return readJournal<UndoAction[]>(KIND, lab) ?? [];
}

function save(lab: string, list: UndoAction[]): void {
  if (list.length) writeJournal(KIND, lab, list);
  else clearJournal(KIND, lab);
}

const BOOT_ID = ['cat', '/proc/sys/kernel/random/boot_id'];

async function bootId(lab: Lab, node: string): Promise<string | undefined> {
  const r = await lab.node(node).exec(BOOT_ID, { timeoutMs: 20_000 }).catch(() => undefined);
  return r?.exitCode === 0 && r.stdout.trim() ? r.stdout.trim() : undefined;
}

/**
 * Undoes one change; returns false when there was nothing to undo (the node rebooted since).
 * Behind a stopped test's gate (its set-up, failing because the test stopped, undoing itself) it
 * throws without trying: every command would be refused, and a best-effort step (an unload's
 * checks) could take a refusal for an answer and drop an undo that was never made. Thrown, the
 * entry stays journaled and the next test's restore, outside any gate, replays it.
 */
async function runAction(lab: Lab, a: UndoAction, boots: Map<string, Promise<string | undefined>>): Promise<boolean> {
  const stopped = closedGate();
  if (stopped) throw new CommandRefusedError(a.node, `not undone yet, left journaled for the restore: the test that made it has stopped (${stopped})`);
  const node = lab.node(a.node);
  if (a.boot && !a.persists) {
    if (!boots.has(a.node)) boots.set(a.node, bootId(lab, a.node));
    const now = await boots.get(a.node);
    if (now && now !== a.boot) return false;
  }
  if (a.kind === 'modules') {
    await unloadModules(node, a.modules);
    return true;
  }
  const r = await node.exec(a.argv, { timeoutMs: 60_000 });
  if (r.exitCode !== 0) throw new Error(`${a.what}: exit ${r.exitCode}${r.stderr.trim() ? `: ${r.stderr.trim().split('\n').slice(-2).join(' ')}` : ''}`);
  return true;
}

/**
 * Runs undos newest first (the stack's top first), one at a time — except module unloads: each
 * takes seconds under emulation and touches only its own node's kernel, so it goes on in the
 * background while the undos of other nodes continue. The next undo on the same node waits for it,
 * so each node's order is kept. (A workload journals its module loads before anything they carry,
 * so by the time an unload comes up, that node's objects are already undone.)
 */
export async function runNewestFirst(stack: UndoAction[], run: (a: UndoAction) => Promise<void>): Promise<void> {
  const unloading = new Map<string, Promise<void>>();
  while (stack.length) {
    const a = stack.pop()!;
    await unloading.get(a.node);
    unloading.delete(a.node);
    if (a.kind === 'modules') unloading.set(a.node, run(a));
    else await run(a);
  }
  await Promise.all(unloading.values());
}

/**
 * An unmount as an undo: a change is journaled before it is made, so a stop between the two (or an
 * undo stopped after it took effect) leaves an undo for a mount that is not there — a plain umount
 * then fails ("not mounted") before every test of the run (S1: RF-03 NFS long stopped in its
 * teardown, and /proc/fs/nfsd's undo failed in the 30 tests after it). $1: the mount point.
 */
export const UNMOUNT_IF_MOUNTED = `awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/mounts || exit 0
umount "$1"`;

const GONE = ' (nothing to undo: the node rebooted since, and this did not outlive the boot)';

export class UndoStack {
  private readonly lab: Lab;
  private readonly owner: string;
  private readonly stack: UndoAction[] = [];
  private readonly boots = new Map<string, Promise<string | undefined>>();

  constructor(lab: Lab, owner: string) {
    this.lab = lab;
    this.owner = `${owner}#${randomUUID().slice(0, 8)}`;
  }

  /** Journals the undo of a change, then makes the change: a crash in between leaves its undo. */
  async change<T>(undo: UndoSpec, act: () => Promise<T>): Promise<T> {
    if (!this.boots.has(undo.node)) this.boots.set(undo.node, bootId(this.lab, undo.node));
    const boot = await this.boots.get(undo.node);
    const a = { ...undo, id: randomUUID(), owner: this.owner, ...(boot ? { boot } : {}) } as UndoAction;
    save(this.lab.loaded.topology.name, [...entries(this.lab.loaded.topology.name), a]);
    this.stack.push(a);
    return act();
  }

  /** Undoes everything, newest first. An undo that fails stays journaled (the next run retries it). */
  async run(): Promise<string[]> {
    const name = this.lab.loaded.topology.name;
    const failed: string[] = [];
    const boots = new Map<string, Promise<string | undefined>>();
    await runNewestFirst(this.stack, async (a) => {
      try {
        await span(`undo ${a.node}: ${a.what}`, () => runAction(this.lab, a, boots));
        save(name, entries(name).filter((e) => e.id !== a.id));
      } catch (e) {
        failed.push(`${a.node}: ${a.what}: ${(e as Error).message}`);
      }
    });
    return failed;
  }
}

/** Undoes what killed runs' workloads left (newest first); returns what it did. A node in `deaf`
 *  (it did not answer earlier in this restore), or found not answering here, keeps its entries
 *  untried: each would wait out the SSH handshake in turn. */
export async function replayUndoJournal(lab: Lab, deaf: Set<string> = new Set()): Promise<string[]> {
  const name = lab.loaded.topology.name;
  const done: string[] = [];
  const boots = new Map<string, Promise<string | undefined>>();
  const untried = new Map<string, number>();
  for (const a of [...entries(name)].reverse()) {
    if (!lab.nodes.has(a.node)) continue;
    if (deaf.has(a.node)) {
      untried.set(a.node, (untried.get(a.node) ?? 0) + 1);
      continue;
    }
    try {
      const ran = await runAction(lab, a, boots);
      save(name, entries(name).filter((e) => e.id !== a.id));
      done.push(`${a.node}: ${a.what}${ran ? '' : GONE}`);
    } catch (e) {
      done.push(`FAILED ${a.node}: ${a.what}: ${(e as Error).message}`);
      if (e instanceof NodeUnreachableError) deaf.add(a.node);
    }
  }
  for (const [node, n] of untried) done.push(`FAILED ${node}: ${n} undo(s) not tried: the node does not answer`);
  return done;
}
