// Shards: a stable part of the selected tests per CI job. A test belongs to shard
// (hash of its suite and title) mod n, so the same test always lands in the same shard for the
// same selection, whatever file it is in or which tests are added around it.
import { createHash } from 'node:crypto';

export interface Shard {
  index: number;
  total: number;
}

/** "i/n" (1 ≤ i ≤ n). */
export function parseShard(text: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = Number(m?.[1]);
  const total = Number(m?.[2]);
  if (!m || total < 1 || index < 1 || index > total) throw new Error(`a shard is i/n with 1 ≤ i ≤ n (got "${text}")`);
  return { index, total };
}

/** --shard, else the CI engine's own job index (GitLab parallel: CI_NODE_INDEX/CI_NODE_TOTAL, 1-based). */
export function shardFrom(option: string | undefined, env: NodeJS.ProcessEnv = process.env): Shard | undefined {
  if (option) return parseShard(option);
  if (env.CI_NODE_INDEX && env.CI_NODE_TOTAL) return parseShard(`${env.CI_NODE_INDEX}/${env.CI_NODE_TOTAL}`);
  return undefined;
}

export function shardOf(key: string, total: number): number {
  return (createHash('sha256').update(key).digest().readUInt32BE(0) % total) + 1;
}

export function inShard(key: string, shard: Shard | undefined): boolean {
  return !shard || shardOf(key, shard.total) === shard.index;
}
