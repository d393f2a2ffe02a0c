// IPv4 helpers (pure).

export type CidrResult = { ok: true; ip: string; prefix: number } | { ok: false; error: string };

export function parseCidr(text: string): CidrResult {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,3})$/.exec(text);
  if (!m) return { ok: false, error: `"${text}" is not IPv4/prefix` };
  const octets = m.slice(1, 5).map(Number);
  const bad = octets.findIndex((o) => o > 255);
  if (bad >= 0) return { ok: false, error: `octet ${bad + 1} of ${text} is ${octets[bad]}: IPv4 octets are 0–255` };
  const prefix = Number(m[5]);
  if (prefix < 1 || prefix > 32) return { ok: false, error: `IPv4 prefix /${prefix} is out of range (1–32)` };
  return { ok: true, ip: octets.join('.'), prefix };
}

export function ipOf(cidr: string): string {
  const r = parseCidr(cidr);
  if (!r.ok) throw new Error(r.error);
  return r.ip;
}
