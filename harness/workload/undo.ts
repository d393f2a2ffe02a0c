// What a workload changed on a lab, and how to undo it — written to the controller's disk *before*
// each change (a killed run is undone by the next one), run newest first at teardown. A workload
// creates only objects it named itself and records each one here; what it found in place (a user's
// target, export, daemon or module) it never records, so it is never removed.
import { randomUUID } from 'node:crypto';
import { clearJournal, readJournal, writeJournal } from '../journal.ts';
import type { Lab } from '../lab/lab.ts';
import { unloadModules } from './modules.ts';

export type UndoAction =
  /** a command on the node (a small script with its arguments: data, never built from values) */
  | { id: string; owner: string; node: string; what: string; kind: 'argv'; argv: string[] }
  /** modules the workload loaded (unloaded with the safety checks of unloadModules) */
  | { id: string; owner: string; node: string; what: string; kind: 'modules'; modules: string[] };

type UndoSpec = UndoAction extends infer A ? (A extends UndoAction ? Omit<A, 'id' | 'owner'> : never) : never;

const KIND = 'undo';

function entries(lab: string): UndoAction[] {
  return readJournal<UndoAction[]>(KIND, lab) ?? [];
}

function save(lab: string, list: UndoAction[]): void {
  if (list.length) writeJournal(KIND, lab, list);
  else clearJournal(KIND, lab);
}

async function runAction(lab: Lab, a: UndoAction): Promise<void> {
  const node = lab.node(a.node);
  if (a.kind === 'modules') return unloadModules(node, a.modules);
  const r = await node.exec(a.argv, { timeoutMs: 60_000 });
  if (r.exitCode !== 0) throw new Error(`${a.what}: exit ${r.exitCode}${r.stderr.trim() ? `: ${r.stderr.trim().split('\n').slice(-2).join(' ')}` : ''}`);
}

export class UndoStack {
  private readonly lab: Lab;
  private readonly owner: string;
  private readonly stack: UndoAction[] = [];

  constructor(lab: Lab, owner: string) {
    this.lab = lab;
    this.owner = `${owner}#${randomUUID().slice(0, 8)}`;
  }

  /** Journals the undo of a change, then makes the change: a crash in between leaves its undo. */
  async change<T>(undo: UndoSpec, act: () => Promise<T>): Promise<T> {
    const a = { ...undo, id: randomUUID(), owner: this.owner } as UndoAction;
    save(this.lab.loaded.topology.name, [...entries(this.lab.loaded.topology.name), a]);
    this.stack.push(a);
    return act();
  }

  /** Undoes everything, newest first. An undo that fails stays journaled (the next run retries it). */
  async run(): Promise<string[]> {
    const name = this.lab.loaded.topology.name;
    const failed: string[] = [];
    while (this.stack.length) {
      const a = this.stack.pop()!;
      try {
        await runAction(this.lab, a);
        save(name, entries(name).filter((e) => e.id !== a.id));
      } catch (e) {
        failed.push(`${a.node}: ${a.what}: ${(e as Error).message}`);
      }
    }
    return failed;
  }
}

/** Undoes what killed runs' workloads left (newest first); returns what it did. */
export async function replayUndoJournal(lab: Lab): Promise<string[]> {
  const name = lab.loaded.topology.name;
  const done: string[] = [];
  for (const a of [...entries(name)].reverse()) {
    if (!lab.nodes.has(a.node)) continue;
    try {
      await runAction(lab, a);
      save(name, entries(name).filter((e) => e.id !== a.id));
      done.push(`${a.node}: ${a.what}`);
    } catch (e) {
      done.push(`FAILED ${a.node}: ${a.what}: ${(e as Error).message}`);
    }
  }
  return done;
}
