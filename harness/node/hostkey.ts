// Host key verification: a pinned SHA256 fingerprint, or OpenSSH known_hosts (hashed entries too).
// ssh2 accepts ANY host key unless a verifier says otherwise, so every SshNode gets one of these.
import { createHash, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** The key type inside an SSH public key blob (its first string), e.g. "ecdsa-sha2-nistp256". */
export function keyTypeOf(keyBlob: Buffer): string {
  if (keyBlob.length < 4) return '?';
  const n = keyBlob.readUInt32BE(0);
  return n > 0 && n < 64 && keyBlob.length >= 4 + n ? keyBlob.subarray(4, 4 + n).toString('latin1') : '?';
}

/** The host key algorithms (what a client offers in KEXINIT) that present a key of this type. */
export function algorithmsForKeyType(type: string): string[] {
  if (type === 'ssh-rsa') return ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'];
  return [type];
}

/** Every host key algorithm ssh2 can verify, in its order of preference. */
export const ALL_HOST_KEY_ALGORITHMS = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa', 'ssh-dss'];

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
    // OpenSSH lowercases a host name before hashing it: match case-insensitively, like plain entries.
    return (name) => createHmac('sha1', salt).update(name.toLowerCase()).digest('base64') === hash64;
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
  /** The host key algorithms to offer, as OpenSSH does: only the types the policy knows for this
   *  host (undefined: any). Offering a type the policy does not know makes the server present a key
   *  that can only "mismatch" — a false alarm of a changed host identity. */
  algorithms?(): string[] | undefined;
  /** A pin that does not say its key type: on a mismatch, try the server's other key types before
   *  calling it a changed identity (only a key that matches is ever accepted). */
  readonly probeKeyTypes?: boolean;
}

export function pinnedPolicy(expected: string): HostKeyPolicy {
  return {
    description: `pinned ${expected}`,
    insecure: false,
    probeKeyTypes: true,
    check(keyBlob) {
      const got = fingerprint(keyBlob);
      return got === expected
        ? { ok: true, how: `matches pinned ${expected}` }
        : { ok: false, reason: 'mismatch', detail: `host key ${got} does not match the pinned ${expected}` };
    },
  };
}

export function knownHostsPolicy(file: string, host: string, port: number): HostKeyPolicy {
  const names = [knownHostsName(host, port)];
  const entriesFor = (): KnownHostsEntry[] => parseKnownHosts(readFileSync(file, 'utf8')).filter((e) => e.marker !== '@cert-authority' && names.some((n) => e.matches(n)));
  return {
    description: `known_hosts ${file}`,
    insecure: false,
    algorithms() {
      let types: string[];
      try {
        types = [...new Set(entriesFor().filter((e) => !e.marker).map((e) => e.keyType))];
      } catch {
        return undefined; // unreadable: check() says so
      }
      if (!types.length) return undefined;
      const algs = ALL_HOST_KEY_ALGORITHMS.filter((a) => types.some((t) => algorithmsForKeyType(t).includes(a)));
      // Only types this client cannot verify (e.g. security keys): offer everything; check() refuses.
      return algs.length ? algs : undefined;
    },
    check(keyBlob) {
      let mine: KnownHostsEntry[];
      try {
        mine = entriesFor();
      } catch (e) {
        return { ok: false, reason: 'unknown', detail: `cannot read ${file}: ${(e as Error).message}` };
      }
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
