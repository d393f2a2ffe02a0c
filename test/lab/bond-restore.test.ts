// A bond option a test changes is the lab's to get back: RF-02 makes the active slave the primary;
// its restore must clear it (bonding's sysfs clears the primary on a newline — an empty write never
// reaches it, and a primary left set turned every later carrier drop into a failover and a failback:
// RF-06 saw 8 switches for 5 drops). A primary left behind anyway is found before the next test.
import { suite, test, expect } from '../../harness/fixture/test.ts';
import { readBond } from '../../harness/fabric/bond.ts';
import { sysfsBond } from '../../harness/fabric/fabric.ts';
import { setPrimary } from '../../harness/fault/fault.ts';

suite('a bond option a test changed is restored', { requires: { nodes: 2 } }, () => {
  test('the primary a test set is cleared at its end, and one left behind is repaired before the next test', async (t) => {
    const [client] = t.pair();
    const node = t.node(client);
    const bond = t.bondOf(client).name;
    const active = (await t.bond(client)).activeSlave;
    const primary = async () => (await readBond(node, bond)).primary;
    expect(await primary(), 'the topology sets no primary').to.equal('');

    const restore = await setPrimary(t.lab, client, bond, active);
    expect(await primary()).to.equal(active);
    await restore();
    expect(await primary(), 'after the restore').to.equal('');

    // Left behind (a killed run, a restore that failed): the lab check before a test rebuilds the bond.
    await node.writeFile(sysfsBond(bond, 'primary'), active);
    const repairs = await t.session.ensureReady();
    expect(repairs.map((r) => `${r.why} → ${r.action}`).join('\n')).to.match(/primary is "\S+", the topology's is ""/);
    expect(await primary(), 'after the repair').to.equal('');
  });
});
