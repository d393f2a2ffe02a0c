// One logger for the harness, on stderr (stdout stays machine-readable for --json).
// Lines are short and human: "12:01:02.345 WARN node-a: SSH connection lost why=…".
// Set RDMA_FAILOVER_LOG=debug|info|warn|error|silent; RDMA_FAILOVER_LOG_JSON=1 for raw JSON.
// Secrets never reach it: redact covers keys that could hold them, and every line is masked
// (registered secrets, key material, long base64 runs: harness/secrets.ts).
import { pino, type Logger } from 'pino';
import { redactText } from './secrets.ts';

const level = process.env.RDMA_FAILOVER_LOG ?? 'warn';
const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

const human = {
  write(line: string): void {
    try {
      const { level: lv, time, msg, node, ...rest } = JSON.parse(line) as Record<string, unknown>;
      const t = new Date(Number(time)).toISOString().slice(11, 23);
      const extra = Object.entries(rest)
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join(' ');
      const lvName = LEVELS[Number(lv)] ?? String(lv);
      const who = typeof node === 'string' ? `${node}: ` : '';
      process.stderr.write(redactText(`${t} ${lvName} ${who}${String(msg)}${extra ? ` ${extra}` : ''}`) + '\n');
    } catch {
      process.stderr.write(redactText(line));
    }
  },
};

export const log: Logger = pino(
  {
    level,
    base: undefined,
    redact: {
      paths: ['privateKey', 'passphrase', 'password', '*.privateKey', '*.passphrase', '*.password', 'identity', '*.identity'],
      censor: '[redacted]',
    },
  },
  process.env.RDMA_FAILOVER_LOG_JSON === '1' ? { write: (line: string) => void process.stderr.write(redactText(line)) } : human,
);

export function nodeLog(node: string): Logger {
  return log.child({ node });
}
