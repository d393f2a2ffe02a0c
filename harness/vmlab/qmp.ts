// QEMU Machine Protocol client: one short connection per request (a QMP socket serves one client
// at a time, and the CLI may run while a suite holds the lab).
import { connect } from 'node:net';

export class QmpError extends Error {
  override name = 'QmpError';
}

export async function qmp(socketPath: string, command: string, args?: Record<string, unknown>, timeoutMs = 10_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const sock = connect(socketPath);
    let buf = '';
    let stage: 'greeting' | 'caps' | 'cmd' = 'greeting';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new QmpError(`QMP ${command} on ${socketPath}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const done = (fn: () => void) => {
      clearTimeout(timer);
      sock.end();
      fn();
    };
    sock.on('error', (e) => done(() => reject(new QmpError(`QMP ${command} on ${socketPath}: ${e.message}`))));
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
          sock.write(JSON.stringify(args ? { execute: command, arguments: args } : { execute: command }) + '\n');
        } else if (stage === 'cmd') {
          if (msg.error) return done(() => reject(new QmpError(`QMP ${command}: ${msg.error?.desc}`)));
          return done(() => resolve(msg.return));
        }
      }
    });
    // "quit" closes the socket without answering sometimes: that is success.
    sock.on('close', () => {
      if (stage === 'cmd' && command === 'quit') done(() => resolve({}));
    });
  });
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
      reject(new QmpError(`QMP ${what} on ${socketPath}: ${answers.length} of ${commands.length} answers within ${timeoutMs} ms`));
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
  });
}
