// The command agent's framing (harness/node/agent.ts): pure logic, no agent process.
import { expect } from 'chai';
import { AgentReader, agentRequest, type AgentSink } from '../../harness/node/agent.ts';

function recorder() {
  const seen: string[] = [];
  const sink = (id: number): AgentSink => ({
    started: (pid, st) => seen.push(`${id} P ${pid} ${st}`),
    out: (c) => seen.push(`${id} O ${c.toString('hex')}`),
    err: (c) => seen.push(`${id} E ${c.toString('hex')}`),
    exit: (code, sig) => seen.push(`${id} X ${code} ${sig}`),
  });
  return { seen, sink };
}

describe('command agent framing', () => {
  const payload = Buffer.from([0, 10, 255, 0x58, 0x20, 10]); // NUL, newlines, a byte that is not UTF-8
  const stream = Buffer.concat([
    Buffer.from('READY 77\nP 1 100 5555\nO 1 6\n'),
    payload,
    Buffer.from('E 1 3\nabcX 1 0 0\nX 2 -1 9\n'),
  ]);
  const want = ['1 P 100 5555', `1 O ${payload.toString('hex')}`, '1 E 616263', '1 X 0 null', '2 X null SIGKILL'];

  it('reads every frame whatever the chunk boundaries (each split point of the stream)', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const { seen, sink } = recorder();
      let ready: number | undefined;
      const r = new AgentReader(sink, (p) => (ready = p), (why) => seen.push(`broken ${why}`));
      r.push(stream.subarray(0, cut));
      r.push(stream.subarray(cut));
      expect(ready, `cut ${cut}`).to.equal(77);
      expect(seen, `cut ${cut}`).to.deep.equal(want);
    }
  });

  it('byte by byte too', () => {
    const { seen, sink } = recorder();
    const r = new AgentReader(sink, () => undefined, (why) => seen.push(`broken ${why}`));
    for (const b of stream) r.push(Buffer.from([b]));
    expect(seen).to.deep.equal(want);
  });

  it('a malformed header breaks the reader once, and nothing after it is believed', () => {
    const { seen, sink } = recorder();
    const broken: string[] = [];
    const r = new AgentReader(sink, () => undefined, (why) => broken.push(why));
    r.push(Buffer.from('P 1 100 5\nX 1 zero 0\nX 1 0 0\n'));
    expect(seen).to.deep.equal(['1 P 100 5']);
    expect(broken).to.have.length(1);
    expect(broken[0]).to.match(/bad frame header "X 1 zero 0"/);
  });

  it('requests carry argv verbatim, NUL-separated; a NUL inside an argument is refused', () => {
    const req = agentRequest(3, ['printf', '%s\n', 'a b', "'$x'"]);
    const body = Buffer.from("printf\0%s\n\0a b\0'$x'");
    expect(req.equals(Buffer.concat([Buffer.from(`R 3 ${body.length}\n`), body]))).to.equal(true);
    expect(() => agentRequest(4, ['echo', 'a\0b'])).to.throw(/NUL/);
    expect(() => agentRequest(5, [])).to.throw(/empty/);
  });
});
