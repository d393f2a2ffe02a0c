// Host key verification: a pinned SHA256 fingerprint, or OpenSSH known_hosts (hashed entries too).
// ssh2 accepts ANY host key unless a verifier says otherwise, so every SshNode gets one of these.
import { createHash, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';

export function fingerprint(keyBlob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '');
}

/** The host name as known_hosts stores it: bare for port 22, else [host]:port. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

interface KnownHostsEntry {
  marker: '@revoked' | '@cert-authority' | undefined;
  matches: (name: string) => boolean;
  keyType: string;
  key: Buffer;
  line: number;
}

function globToRegExp(glob: string): RegExp {
  const re = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${re}$`, 'i');
}

function hostMatcher(field: string): (name: string) => boolean {
  if (field.startsWith('|1|')) {
    const [, , salt64, hash64] = field.split('|');
    const salt = Buffer.from(salt64 ?? '', 'base64');
    return (name) => createHmac('sha1', salt).update(name).digest('base64') === hash64;
  }
  const patterns = field.split(',').map((p) => ({ negated: p.startsWith('!'), re: globToRegExp(p.replace(/^!/, '')) }));
  return (name) => {
    let hit = false;
    for (const p of patterns) {
      if (p.re.test(name)) {
        if (p.negated) return false;
        hit = true;
      }
    }
    return hit;
  };
}

export function parseKnownHosts(text: string): KnownHostsEntry[] {
  const out: KnownHostsEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const f = line.split(/\s+/);
    let marker: KnownHostsEntry['marker'];
    if (f[0] === '@revoked' || f[0] === '@cert-authority') marker = f.shift() as KnownHostsEntry['marker'];
    const [hosts, keyType, key64] = f;
    if (!hosts || !keyType || !key64) return;
    out.push({ marker, matches: hostMatcher(hosts), keyType, key: Buffer.from(key64, 'base64'), line: i + 1 });
  });
  return out;
}

export type HostKeyVerdict =
  | { ok: true; how: string }
  | { ok: false; reason: 'mismatch' | 'unknown' | 'revoked'; detail: string };

export interface HostKeyPolicy {
  readonly description: string;
  readonly insecure: boolean;
  check(keyBlob: Buffer): HostKeyVerdict;
}

export function pinnedPolicy(expected: string): HostKeyPolicy {
  return {
    description: `pinned ${expected}`,
    insecure: false,
    check(keyBlob) {
      const got = fingerprint(keyBlob);
      return got === expected
        ? { ok: true, how: `matches pinned ${expected}` }
        : { ok: false, reason: 'mismatch', detail: `host key ${got} does not match the pinned ${expected}` };
    },
  };
}

export function knownHostsPolicy(file: string, host: string, port: number): HostKeyPolicy {
  return {
    description: `known_hosts ${file}`,
    insecure: false,
    check(keyBlob) {
      let entries: KnownHostsEntry[];
      try {
        entries = parseKnownHosts(readFileSync(file, 'utf8'));
      } catch (e) {
        return { ok: false, reason: 'unknown', detail: `cannot read ${file}: ${(e as Error).message}` };
      }
      const names = [knownHostsName(host, port)];
      const mine = entries.filter((e) => e.marker !== '@cert-authority' && names.some((n) => e.matches(n)));
      if (mine.some((e) => e.marker === '@revoked' && e.key.equals(keyBlob))) {
        return { ok: false, reason: 'revoked', detail: `host key ${fingerprint(keyBlob)} is marked @revoked in ${file}` };
      }
      const hit = mine.find((e) => !e.marker && e.key.equals(keyBlob));
      if (hit) return { ok: true, how: `${file}:${hit.line}` };
      if (mine.length) {
        return {
          ok: false,
          reason: 'mismatch',
          detail: `REMOTE HOST IDENTIFICATION HAS CHANGED: ${names[0]} presented ${fingerprint(keyBlob)}, ${file} lists another key (line ${mine.map((m) => m.line).join(', ')})`,
        };
      }
      return { ok: false, reason: 'unknown', detail: `${names[0]} is not in ${file} (presented ${fingerprint(keyBlob)}); add it with ssh-keyscan after checking the fingerprint` };
    },
  };
}

export function insecurePolicy(): HostKeyPolicy {
  return {
    description: 'INSECURE: any host key accepted',
    insecure: true,
    check: (keyBlob) => ({ ok: true, how: `accepted without verification (${fingerprint(keyBlob)})` }),
  };
}
