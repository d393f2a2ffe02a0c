// Scope: teardown newest first, errors collected, and one teardown even when two callers dispose at
// once (a Ctrl-C disposing every live scope while the aborted test disposes its own).
import { expect } from 'chai';
import { sleep } from '../../harness/clock.ts';
import { liveScopes, Scope } from '../../harness/fixture/scope.ts';

describe('scope', () => {
  it('tears down newest first and collects every error, naming its resource', async () => {
    const s = new Scope('t');
    const order: string[] = [];
    s.defer('a', () => void order.push('a'));
    s.defer('b', () => {
      order.push('b');
      throw new Error('boom');
    });
    s.defer('c', () => void order.push('c'));
    const errors = await s.dispose();
    expect(order).to.deep.equal(['c', 'b', 'a']);
    expect(errors.map((e) => e.message)).to.deep.equal(['teardown of b failed: boom']);
    expect(() => s.defer('d', () => undefined)).to.throw(/already disposed/);
  });

  it('a second dispose during the first waits for it and runs nothing twice', async () => {
    const s = new Scope('t');
    let runs = 0;
    let finished = false;
    s.defer('slow', async () => {
      runs++;
      await sleep(50);
      finished = true;
    });
    const first = s.dispose();
    expect(liveScopes(), 'a scope still tearing down is live (Ctrl-C waits for it)').to.include(s);
    const second = await s.dispose();
    expect(finished, 'the second caller returned before the teardown ended').to.equal(true);
    expect(second).to.deep.equal([]);
    await first;
    expect(runs).to.equal(1);
    expect(liveScopes()).to.not.include(s);
  });
});
