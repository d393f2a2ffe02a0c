// A bond option a test changes is the lab's to get back: RF-02 makes the active slave the primary;
// its restore must clear it (bonding's sysfs clears the primary on a newline — an empty write never
// reaches it, and a primary left set turned every later carrier drop into a failover and a failback:
// RF-06 saw 8 switches for 5 drops). A primary left behind anyway is found before the next test.
import { suite, test, expect } from '../../harness/fixture/test.ts';
import { readBond } from '../../harness/fabric/bond.ts';
import { fabricDown, sysfsBond, type FabricRecord } from '../../harness/fabric/fabric.ts';
import { readJournal } from '../../harness/journal.ts';
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

  // A journal outlives a boot (a node rebooted, on a real lab by its owner): what it lists went with
  // that boot, and what carries the same names now is not the harness's to take down.
  test("a fabric journal from another boot of the node undoes nothing there (the bond of this boot stays)", async (t) => {
    const [client] = t.pair();
    const node = t.node(client);
    const rec = readJournal<FabricRecord>('fabric', t.topology.name);
    expect(rec, 'the fabric of this run is journaled').to.not.equal(undefined);
    const mine = rec!.nodes.find((n) => n.node === client)!;
    expect(mine.bonds.map((b) => b.name)).to.include(t.bondOf(client).name);
    const stale: FabricRecord = { ...rec!, nodes: [{ ...mine, modulesBefore: { boot: '00000000-0000-0000-0000-000000000000', modules: [] } }] };
    const bond = t.bondOf(client).name;
    const before = await readBond(node, bond);
    expect(await fabricDown(t.lab, stale), 'no problems').to.deep.equal([]);
    const after = await readBond(node, bond);
    expect(after.slaves, 'the bond and its slaves are still there').to.deep.equal(before.slaves);
    expect(after.activeSlave).to.equal(before.activeSlave);
    // the same record with this boot's id does undo it: the check above is the boot's, not a no-op
    const current: FabricRecord = { ...rec!, nodes: [{ ...mine, modulesBefore: { boot: (await node.readFile('/proc/sys/kernel/random/boot_id')).trim(), modules: mine.modulesBefore?.modules ?? [] } }] };
    t.scope.defer('rebuild the fabric', () => t.session.fabricFresh().then(() => undefined));
    expect(await fabricDown(t.lab, current)).to.deep.equal([]);
    expect((await node.exec(['test', '-e', `/sys/class/net/${bond}`])).exitCode, 'the bond of this boot, undone').to.equal(1);
  });
});
