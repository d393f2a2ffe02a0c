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

/** The journals of one lab (KIND-LAB.json; kinds have no dash, so lab "rxe" is not lab "vm-rxe"). */
export function listJournals(lab: string): string[] {
  if (!existsSync(journalDir())) return [];
  return readdirSync(journalDir()).filter((f) => /^[a-z]+-/.test(f) && f.slice(f.indexOf('-') + 1) === `${lab}.json`);
}

/**
 * Drops every journal of a VM lab that was just destroyed: its guests' kernel state and their
 * writable root went with them, so there is nothing left to undo (a real lab's journals are never
 * dropped this way). Returns the files removed.
 */
export function clearLabJournals(lab: string): string[] {
  const files = listJournals(lab);
  for (const f of files) rmSync(join(journalDir(), f), { force: true });
  return files;
}

/** What each of a lab's restore journals holds, in words (for the message that stops a run). */
export function describeJournals(lab: string): string[] {
  return listJournals(lab).map((f) => {
    const path = join(journalDir(), f);
    let what = '';
    try {
      const data: unknown = JSON.parse(readFileSync(path, 'utf8'));
      const kind = f.slice(0, f.indexOf('-'));
      if (kind === 'fabric') {
        const nodes = (data as { nodes?: { node: string; bonds: { name: string; created: boolean }[] }[] }).nodes ?? [];
        what = `bonds built by the harness: ${nodes.map((n) => `${n.node} ${n.bonds.filter((b) => b.created).map((b) => b.name).join('+') || '(none)'}`).join(', ')}`;
      } else if (Array.isArray(data)) what = `${data.length} pending undo action(s): ${data.map((a: { type?: string; what?: string; node?: string }) => `${a.node ?? '?'} ${a.type ?? a.what ?? ''}`.trim()).join(', ')}`;
      else if (data && typeof data === 'object') what = `${Object.entries(data).map(([k, v]) => `${k}: ${Array.isArray(v) ? v.length : 1}`).join(', ')}`;
    } catch {
      what = 'unreadable';
    }
    return `${path} — ${what}`;
  });
}
