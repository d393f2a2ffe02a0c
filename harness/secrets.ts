// Secrets never leave the harness: values the topology marks secret (a carrier command's password
// taken from the environment) are registered here and masked wherever text goes out — errors, logs,
// the console, reports. Key material is masked too, even when it is not registered: a private key
// block, a private key printed line by line (its lines arrive one by one), and long base64 runs.

const registered = new Set<string>();

/** Values shorter than this cannot be masked without mangling ordinary text; refuse them. */
export const MIN_SECRET_LENGTH = 4;

export function registerSecret(value: string): void {
  if (value.length < MIN_SECRET_LENGTH) throw new Error(`a secret must be at least ${MIN_SECRET_LENGTH} characters long to be masked reliably`);
  registered.add(value);
}

export function hasSecrets(): boolean {
  return registered.size > 0;
}

/** Registered secret values → [secret]. */
export function maskSecrets(text: string): string {
  if (!registered.size || !text) return text;
  let out = text;
  for (const s of [...registered].sort((a, b) => b.length - a.length)) out = out.split(s).join('[secret]');
  return out;
}

const KEY_BLOCK = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)/g;
const KEY_HEADER = /-----(?:BEGIN|END) [A-Z0-9 ]*PRIVATE KEY-----/g;
// 48+ characters of base64 that mix upper case, lower case and digits: key material, tokens.
// (Hex digests and kernel addresses are lower case; fingerprints are 43 characters.)
const BASE64_RUN = /[A-Za-z0-9+/]{48,}={0,2}/g;
const looksEncoded = (s: string) => /[A-Z]/.test(s) && /[a-z]/.test(s) && /[0-9]/.test(s);

/** Everything above: registered secrets, key blocks, lone key header lines and base64 runs. */
export function redactText(text: string): string {
  if (!text) return text;
  return maskSecrets(text)
    .replace(KEY_BLOCK, '[redacted private key]')
    .replace(KEY_HEADER, '[redacted private key]')
    .replace(BASE64_RUN, (m) => (looksEncoded(m) ? '[redacted base64]' : m));
}

let consoleMasked = false;

/** Masks registered secrets in everything this process prints (the console of a run, a CLI command). */
export function maskConsole(): void {
  if (consoleMasked) return;
  consoleMasked = true;
  for (const stream of [process.stdout, process.stderr]) {
    const write = stream.write.bind(stream) as (chunk: unknown, ...rest: unknown[]) => boolean;
    stream.write = ((chunk: unknown, ...rest: unknown[]) =>
      write(registered.size && (typeof chunk === 'string' || Buffer.isBuffer(chunk)) ? maskSecrets(chunk.toString()) : chunk, ...rest));
  }
}
