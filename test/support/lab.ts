// Host-side views of what a lab leaves behind.
import { execFileSync } from 'node:child_process';

export function netnsList(): string[] {
  const out = execFileSync('ip', ['-j', 'netns', 'list'], { encoding: 'utf8' }).trim();
  return out ? (JSON.parse(out) as { name: string }[]).map((n) => n.name) : [];
}

export function hostTaps(labId: string): string[] {
  const out = execFileSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' });
  return (JSON.parse(out) as { ifname: string }[]).map((l) => l.ifname).filter((n) => n.startsWith(`rf${labId}`));
}
