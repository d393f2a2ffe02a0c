// The remote processes the harness left running, journaled on the controller: every streamed
// command (monitors, workload tools) is recorded when it starts and forgotten when it has exited.
// After the harness was killed (kill -9), the next run stops exactly those — by process group,
// and only if the PID still belongs to the same process (its start time) — before it removes what
// they held (a tracefs instance cannot be removed while a reader holds it).
import { randomUUID } from 'node:crypto';
import { clearJournal, readJournal, writeJournal } from '../journal.ts';
import { NodeUnreachableError, type NodeProcess, type ProcessHooks } from '../node/node.ts';
import type { Lab } from './lab.ts';

export interface JournaledProcess extends NodeProcess {
  id: string;
  node: string;
  /** what it was, for messages: the command's first words */
  what: string;
  /** who started it (StreamOptions.owner) */
  owner?: string;
}

const KIND = 'procs';

function entries(lab: string): JournaledProcess[] {
  return readJournal<JournaledProcess[]>(KIND, lab) ?? [];
}

function save(lab: string, list: JournaledProcess[]): void {
  if (list.length) writeJournal(KIND, lab, list);
  else clearJournal(KIND, lab);
}

/** Hooks for a lab's nodes: journal each streamed command while it runs. */
export function processJournal(lab: string): ProcessHooks {
  return {
    started(node, p, argv, owner) {
      save(lab, [...entries(lab), { id: randomUUID(), node, ...p, what: argv.slice(0, 3).join(' ').slice(0, 80), ...(owner ? { owner } : {}) }]);
    },
    ended(node, p) {
      save(lab, entries(lab).filter((e) => !(e.node === node && e.pid === p.pid && e.startTime === p.startTime)));
    },
  };
}

/**
 * Stops what is ours of a journaled command ($1 PID, $2 PGID, $3 start time), in any POSIX sh:
 * its leader if it is still the process we started, and the processes left in its group and
 * session even when the leader is gone (a reader that outlived a shell loop still holds a trace
 * instance). A PGID cannot be reused while a member lives, so a member started no earlier than
 * the leader is ours; a leader PID now held by another process means nothing is left of ours.
 * Each process is signalled by PID: dash's kill takes no `--`, and a `kill -- -PGID` that fails
 * there falls back to the leader alone — which is how a reader once outlived its group.
 */
export const STOP_IF_SAME = `pid=$1; pgid=$2; st=$3
ours() {
  cat /proc/[0-9]*/stat 2>/dev/null | awk -v l="$pid" -v g="$pgid" -v st="$st" '
    { p = $1; s = $0; sub(/^.*\\) /, "", s); n = split(s, f, " ") }
    n < 20 { next }
    p == l && f[20] != st { reused = 1 }
    f[1] == "Z" { next }
    p == l && f[20] == st { list = list " " p; next }
    l == g && f[3] == g && f[4] == g && f[20] + 0 >= st + 0 { list = list " " p }
    END { if (!reused) print list }'
}
left=$(ours); [ -n "$left" ] || { echo gone; exit 0; }
kill -TERM $left 2>/dev/null
i=0
while [ $i -lt 10 ]; do
  left=$(ours); [ -n "$left" ] || { echo stopped; exit 0; }
  sleep 0.2; i=$((i + 1))
done
kill -KILL $left 2>/dev/null; sleep 0.2
left=$(ours); [ -z "$left" ] || { echo "still running after SIGKILL:$left" >&2; exit 1; }
echo killed`;

/**
 * Stops what an earlier (killed) run left running on the lab's nodes. An entry is forgotten only
 * when its process is known to be gone; a node that does not answer keeps its entries, and is added
 * to `deaf` (the next phases of a restore skip it). Returns what it did, one line per process.
 */
export async function stopLeftoverProcesses(lab: Lab, spare: (e: JournaledProcess) => boolean = () => false, deaf: Set<string> = new Set()): Promise<string[]> {
  const name = lab.loaded.topology.name;
  // what a live owner still uses (this run's session-long monitors) is not a leftover
  const list = entries(name).filter((e) => !spare(e));
  if (!list.length) return [];
  const done: string[] = [];
  const kept: JournaledProcess[] = [];
  await Promise.all(
    [...new Set(list.map((e) => e.node))].map(async (node) => {
      const mine = list.filter((e) => e.node === node);
      if (!lab.nodes.has(node)) {
        kept.push(...mine); // not a node of this lab object: keep the entries for one that has it
        return;
      }
      for (const [i, e] of mine.entries()) {
        try {
          const r = await lab.node(node).exec(['sh', '-c', STOP_IF_SAME, 'stop-left', String(e.pid), String(e.pgid), e.startTime], { timeoutMs: 20_000 });
          if (r.exitCode !== 0) throw new Error(r.stderr.trim() || `exit ${r.exitCode}`);
          // Gone already (a node rebooted under it, or its exit was never reported): nothing was
          // done, so it is no repair — the entry is only forgotten.
          if (r.stdout.trim() !== 'gone') done.push(`${node}: ${e.what} (pid ${e.pid}) ${r.stdout.trim()}`);
        } catch (err) {
          kept.push(e);
          done.push(`FAILED ${node}: ${e.what} (pid ${e.pid}): ${(err as Error).message}`);
          // A node that does not answer will not for the next entry either: keep the rest for later
          // (a rebooted VM has none of them; a real lab's operator gets the journal).
          if (err instanceof NodeUnreachableError) {
            deaf.add(node);
            kept.push(...mine.slice(i + 1));
            if (i + 1 < mine.length) done.push(`FAILED ${node}: ${mine.length - i - 1} more process(es) not tried: the node does not answer`);
            return;
          }
        }
      }
    }),
  );
  // Entries added meanwhile (none expected: this runs before anything starts) are kept too.
  const now = entries(name).filter((e) => !list.some((x) => x.id === e.id));
  save(name, [...kept, ...now]);
  return done;
}
