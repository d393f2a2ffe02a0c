// QEMU Machine Protocol client: one short connection per request or batch (a QMP socket serves one
// client at a time, and the CLI may run while a suite holds the lab).
import { connect } from 'node:net';

export class QmpError extends Error {
  override name = 'QmpError';
}

export async function qmp(socketPath: string, command: string, args?: Record<string, unknown>, timeoutMs = 10_000): Promise<unknown> {
  const [answer] = await qmpBatch(socketPath, [args ? { command, args } : { command }], timeoutMs);
  return answer;
}

/**
 * Several commands on one connection, written in one go once the capabilities are negotiated: QEMU
 * runs them back to back (microseconds apart), where one connection each costs milliseconds to
 * hundreds under load. Resolves with the answers in order; rejects on the first error.
 */
export async function qmpBatch(socketPath: string, commands: readonly { command: string; args?: Record<string, unknown> }[], timeoutMs = 10_000): Promise<unknown[]> {
  const what = commands.map((c) => c.command).join('+');
  return new Promise((resolve, reject) => {
    const sock = connect(socketPath);
    let buf = '';
    let stage: 'greeting' | 'caps' | 'cmd' = 'greeting';
    const answers: unknown[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new QmpError(`QMP ${what} on ${socketPath}: no answer within ${timeoutMs} ms${commands.length > 1 ? ` (${answers.length} of ${commands.length} answered)` : ''}`));
    }, timeoutMs);
    const done = (fn: () => void) => {
      clearTimeout(timer);
      sock.end();
      fn();
    };
    sock.on('error', (e) => done(() => reject(new QmpError(`QMP ${what} on ${socketPath}: ${e.message}`))));
    sock.on('data', (c: Buffer) => {
      buf += c.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        const msg = JSON.parse(line) as { QMP?: unknown; return?: unknown; error?: { desc: string }; event?: string };
        if (msg.event) continue;
        if (stage === 'greeting' && msg.QMP) {
          stage = 'caps';
          sock.write(JSON.stringify({ execute: 'qmp_capabilities' }) + '\n');
        } else if (stage === 'caps') {
          if (msg.error) return done(() => reject(new QmpError(`QMP capabilities: ${msg.error?.desc}`)));
          stage = 'cmd';
          sock.write(commands.map((c) => JSON.stringify(c.args ? { execute: c.command, arguments: c.args } : { execute: c.command }) + '\n').join(''));
        } else if (stage === 'cmd') {
          if (msg.error) return done(() => reject(new QmpError(`QMP ${commands[answers.length]?.command}: ${msg.error?.desc}`)));
          answers.push(msg.return);
          if (answers.length === commands.length) return done(() => resolve(answers));
        }
      }
    });
    // "quit" closes the socket without answering sometimes: that is success.
    sock.on('close', () => {
      if (stage === 'cmd' && commands[answers.length]?.command === 'quit') done(() => resolve([...answers, {}]));
    });
  });
}
