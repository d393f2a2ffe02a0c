// Several small kernel writes in one round trip (each SSH exec costs ~100 ms on a TCG guest).
// Each value is still written with exactly one write(2), in order; the first failure stops the
// batch and is reported with its path and errno, like Node.writeFile.
import { FileWriteError, type Node } from '../node/node.ts';

const BATCH = `while [ $# -ge 2 ]; do
  if ! printf "%s" "$2" | dd of="$1" bs=65536 status=none; then echo "rf-failed-path $1" >&2; exit 1; fi
  shift 2
done`;

export async function writeSysfs(node: Node, writes: readonly [path: string, value: string][]): Promise<void> {
  if (!writes.length) return;
  const r = await node.exec(['sh', '-c', BATCH, 'sysfs', ...writes.flat()], { timeoutMs: 30_000 });
  if (r.exitCode !== 0) {
    const path = /rf-failed-path (.*)/.exec(r.stderr)?.[1] ?? writes[0]![0];
    throw new FileWriteError(node.name, path, r.stderr.replace(/rf-failed-path .*\n?/, ''));
  }
}

/** Several `ip` commands in one round trip (ip -batch); topology values are interface names and
 *  addresses validated by the schema, never shell text. */
export async function ipBatch(node: Node, commands: readonly (readonly string[])[]): Promise<void> {
  if (!commands.length) return;
  for (const c of commands) for (const w of c) if (!/^[A-Za-z0-9_.:/+-]+$/.test(w)) throw new Error(`refusing ip batch word ${JSON.stringify(w)}`);
  await node.run(['ip', '-batch', '-'], { input: commands.map((c) => c.join(' ')).join('\n') + '\n', timeoutMs: 30_000 });
}
