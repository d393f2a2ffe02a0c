// Restore journals on the controller's disk: what the harness changed on a lab, written before the
// change, so that a crash, Ctrl-C or SIGKILL never leaves a lab broken: the next run replays them.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, readdirSync } from 'node:fs';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cacheDir } from './vmlab/paths.ts';

export function journalDir(): string {
  return join(cacheDir(), 'journal');
}

function file(kind: string, lab: string): string {
  return join(journalDir(), `${kind}-${lab}.json`);
}

export function writeJournal(kind: string, lab: string, data: unknown): void {
  mkdirSync(journalDir(), { recursive: true, mode: 0o700 });
  const f = file(kind, lab);
  writeFileSync(`${f}.tmp`, JSON.stringify(data, null, 2));
  renameSync(`${f}.tmp`, f);
}

export function readJournal<T>(kind: string, lab: string): T | undefined {
  const f = file(kind, lab);
  return existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as T) : undefined;
}

export function clearJournal(kind: string, lab: string): void {
  rmSync(file(kind, lab), { force: true });
}

export function listJournals(lab: string): string[] {
  if (!existsSync(journalDir())) return [];
  return readdirSync(journalDir()).filter((f) => f.endsWith(`-${lab}.json`));
}
