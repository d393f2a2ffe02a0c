// Several small kernel changes in one round trip (each SSH exec costs 150–600 ms on a TCG guest
// just after boot). Each sysfs value is still written with exactly one write(2), in order; the
// first failure stops the batch and is reported with what failed (a sysfs path with its errno, like
// Node.writeFile). Every value travels as an argument, never as shell text.
import { FileWriteError, NodeError, SMALL_WRITE_BYTES, type Node } from '../node/node.ts';

/** One step of a batch: sysfs writes, an `ip -batch`, or one command (its argv). */
export type BatchStep = { write: readonly (readonly [path: string, value: string])[] } | { ip: readonly (readonly string[])[] } | { run: readonly string[] };

// Ops: W path value | I ip-batch-text | C n argv… A value is written by bash's printf builtin: one
// write(2) up to SMALL_WRITE_BYTES (node.ts), no fork (a pipe into dd cost 50 ms a value).
const BATCH = `while [ $# -gt 0 ]; do
  op=$1; shift
  case $op in
  W) printf "%s" "$2" > "$1" || { echo "rf-failed-path $1" >&2; exit 1; }; shift 2 ;;
  I) printf "%s" "$1" | ip -batch - || { echo "rf-failed-step ip -batch" >&2; exit 1; }; shift ;;
  C) n=$1; shift; "\${@:1:$n}" || { echo "rf-failed-step \${*:1:$n}" >&2; exit 1; }; shift "$n" ;;
  *) echo "rf-failed-step unknown op $op" >&2; exit 2 ;;
  esac
done`;

/** Runs the steps in order in one round trip; resolves with what they printed (stdout). */
export async function nodeBatch(node: Node, steps: readonly BatchStep[], timeoutMs = 60_000): Promise<string> {
  const args: string[] = [];
  for (const s of steps) {
    if ('write' in s) {
      for (const [p, v] of s.write) {
        if (Buffer.byteLength(v) > SMALL_WRITE_BYTES || v.includes('\0')) throw new Error(`a batch writes small values only (${p})`);
        args.push('W', p, v);
      }
    } else if ('ip' in s) {
      if (!s.ip.length) continue;
      // topology values are interface names and addresses validated by the schema, never shell text
      for (const c of s.ip) for (const w of c) if (!/^[A-Za-z0-9_.:/+-]+$/.test(w)) throw new Error(`refusing ip batch word ${JSON.stringify(w)}`);
      args.push('I', s.ip.map((c) => c.join(' ')).join('\n') + '\n');
    } else args.push('C', String(s.run.length), ...s.run);
  }
  if (!args.length) return '';
  const r = await node.exec(['bash', '-c', BATCH, 'batch', ...args], { timeoutMs });
  if (r.exitCode === 0) return r.stdout;
  const path = /rf-failed-path (.*)/.exec(r.stderr)?.[1];
  const stderr = r.stderr.replace(/rf-failed-(path|step) .*\n?/, '');
  if (path) throw new FileWriteError(node.name, path, stderr);
  const step = /rf-failed-step (.*)/.exec(r.stderr)?.[1] ?? 'batch';
  throw new NodeError(node.name, `${node.name}: ${step} failed (exit ${r.exitCode}): ${stderr.trim() || 'no error text'}`);
}

