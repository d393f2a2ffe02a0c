// A. Bond conformance: the 2006 bonding-over-IPoIB design against today's kernel.
// State is read as data (sysfs, `ip -j`); each rule is checked on the kernel under test. Rules that
// need IPoIB slaves run on real HCAs and are SKIPPED here with the reason; their generic part runs
// with a non-Ethernet device (nlmon), as the kernel's own bonding selftests do.
import { suite, test, expect, type TestContext } from '../harness/fixture/test.ts';
import { CarrierLoss, Failback } from '../harness/fault/fault.ts';
import { readBond, readNetdev } from '../harness/fabric/bond.ts';
import { sysfsBond } from '../harness/fabric/fabric.ts';
import { FileWriteError } from '../harness/node/node.ts';
import { failoverBudget } from '../harness/topology/defaults.ts';
import { now, sleep, waitFor } from '../harness/clock.ts';

const ARPHRD_ETHER = 1;
const ARPHRD_INFINIBAND = 32;
const ARPHRD_NETLINK = 824;

/** A throwaway bond and devices on one node, removed after the test whatever happens. */
async function scratchBond(t: TestContext, node: string, name: string, devices: { name: string; type: 'nlmon' | 'dummy' }[], mode = 'active-backup'): Promise<void> {
  const n = t.node(node);
  await t.scope.use(
    `scratch bond ${name} on ${node}`,
    async () => {
      await n.run(['modprobe', '-a', 'nlmon', 'dummy']);
      for (const d of devices) await n.run(['ip', 'link', 'add', d.name, 'type', d.type]);
      await n.writeFile('/sys/class/net/bonding_masters', `+${name}`);
      await n.writeFile(sysfsBond(name, 'mode'), mode);
    },
    async () => {
      await n.exec(['sh', '-c', '[ -e "/sys/class/net/$1" ] && echo "-$1" > /sys/class/net/bonding_masters; true', 'rm', name]);
      for (const d of devices) await n.exec(['ip', 'link', 'del', d.name]);
    },
  );
}

async function enslave(t: TestContext, node: string, bond: string, slave: string): Promise<FileWriteError | undefined> {
  await t.node(node).run(['ip', 'link', 'set', 'dev', slave, 'down']);
  return t
    .node(node)
    .writeFile(sysfsBond(bond, 'slaves'), `+${slave}`)
    .then(() => undefined)
    .catch((e: unknown) => {
      if (e instanceof FileWriteError) return e;
      throw e;
    });
}

async function sys(t: TestContext, node: string, dev: string, attr: string): Promise<string> {
  return (await t.node(node).readFile(`/sys/class/net/${dev}/${attr}`)).trim();
}

suite('Bond conformance (A. in the test plan)', { requires: { nodes: 1 } }, () => {
  test('BC-01 the bond type follows the first slave (generic part: a non-Ethernet nlmon slave)', async (t) => {
    const [node] = t.pair();
    await scratchBond(t, node, 'rfbc1', [{ name: 'rfbcn1', type: 'nlmon' }]);
    expect(Number(await sys(t, node, 'rfbc1', 'type')), 'an empty bond is Ethernet').to.equal(ARPHRD_ETHER);
    expect(await enslave(t, node, 'rfbc1', 'rfbcn1')).to.equal(undefined);
    for (const attr of ['type', 'addr_len', 'broadcast']) {
      expect(await sys(t, node, 'rfbc1', attr), `bond ${attr} == slave ${attr}`).to.equal(await sys(t, node, 'rfbcn1', attr));
    }
    expect(Number(await sys(t, node, 'rfbc1', 'type'))).to.equal(ARPHRD_NETLINK);
  });

  test('BC-01 (IPoIB) an IPoIB bond has type 32, 20-byte addresses and the slave broadcast', async (t) => {
    for (const n of t.bondedNodes()) {
      const b = t.bondOf(n.name);
      expect(Number(await sys(t, n.name, b.name, 'type'))).to.equal(ARPHRD_INFINIBAND);
      expect(Number(await sys(t, n.name, b.name, 'addr_len'))).to.equal(20);
      expect(await sys(t, n.name, b.name, 'broadcast')).to.equal(await sys(t, n.name, b.slaves[0]!, 'broadcast'));
    }
  }, { requires: { linkTypes: ['ipoib'] } });

  test('BC-02 a slave of another type is refused with EINVAL and the bond is unchanged', async (t) => {
    const [node] = t.pair();
    await scratchBond(t, node, 'rfbc2', [{ name: 'rfbcn2', type: 'nlmon' }, { name: 'rfbcd2', type: 'dummy' }]);
    expect(await enslave(t, node, 'rfbc2', 'rfbcn2')).to.equal(undefined);
    const before = await readBond(t.node(node), 'rfbc2');
    const err = await enslave(t, node, 'rfbc2', 'rfbcd2');
    expect(err, 'enslaving an Ethernet device into a non-Ethernet bond').to.be.instanceOf(FileWriteError);
    expect(err!.errno).to.equal('EINVAL');
    const after = await readBond(t.node(node), 'rfbc2');
    expect({ type: after.type, slaves: after.slaves, active: after.activeSlave }).to.deep.equal({ type: before.type, slaves: before.slaves, active: before.activeSlave });
    expect((await readNetdev(t.node(node), 'rfbcd2')).master, 'the refused device is not enslaved').to.equal('');
  });

  test('BC-03 IPoIB slaves are refused in modes other than active-backup (EOPNOTSUPP)', async (t) => {
    const [node] = t.pair();
    const parent = t.bondOf(node).slaves[0]!;
    // A P_Key child of the first IPoIB slave is a spare IPoIB device for this check.
    await t.scope.use('IPoIB child', () => t.node(node).run(['ip', 'link', 'add', 'link', parent, 'name', 'rfbcib3', 'type', 'ipoib', 'pkey', '0x8bc3']), () => t.node(node).run(['ip', 'link', 'del', 'rfbcib3']).then(() => undefined));
    await scratchBond(t, node, 'rfbc3', [], 'balance-rr');
    const err = await enslave(t, node, 'rfbc3', 'rfbcib3');
    expect(err).to.be.instanceOf(FileWriteError);
    expect(err!.errno).to.equal('EOPNOTSUPP');
  }, { requires: { linkTypes: ['ipoib'] } });

  test('BC-04 a slave without set_mac_address forces fail_over_mac=active; slaves keep their own addresses', async (t) => {
    const [node] = t.pair();
    await scratchBond(t, node, 'rfbc4', [{ name: 'rfbcn4', type: 'nlmon' }]);
    await t.node(node).writeFile(sysfsBond('rfbc4', 'fail_over_mac'), 'none');
    expect((await readBond(t.node(node), 'rfbc4')).failOverMac).to.equal('none');
    expect(await enslave(t, node, 'rfbc4', 'rfbcn4')).to.equal(undefined);
    expect((await t.node(node).readFile(sysfsBond('rfbc4', 'fail_over_mac'))).trim()).to.equal('active 1');
    // On the fabric bond (fail_over_mac=active) every slave still has its permanent address.
    for (const n of t.bondedNodes()) {
      for (const s of t.bondOf(n.name).slaves) {
        const d = await readNetdev(t.node(n.name), s);
        if (d.permAddress) expect(d.address, `${n.name}/${s} address`).to.equal(d.permAddress);
      }
    }
  });

  test('BC-05 the bond address is the active slave\'s after enslave, after a failover and after a failback', async (t) => {
    const [node] = t.pair();
    const n = t.node(node);
    const check = async (when: string) => {
      const b = await readBond(n, t.bondOf(node).name);
      const mac = await sys(t, node, b.activeSlave, 'address');
      expect(b.address, `${when}: bond address vs ${b.activeSlave}`).to.equal(mac);
      return b;
    };
    const b0 = await check('after enslave (fabric up)');
    await t.monitor();
    await t.primary(node, b0.activeSlave);
    const loss = new CarrierLoss(node, b0.activeSlave);
    await t.inject(loss);
    await waitFor('failover', async () => ((await readBond(n, b0.name)).activeSlave !== b0.activeSlave ? true : undefined), { timeoutMs: 10_000 });
    await sleep(300);
    const b1 = await check('after the failover');
    expect(b1.activeSlave).to.not.equal(b0.activeSlave);
    await t.inject(new Failback(node, b0.name, b0.activeSlave));
    await waitFor('failback', async () => ((await readBond(n, b0.name)).activeSlave === b0.activeSlave ? true : undefined), { timeoutMs: 10_000 });
    await sleep(300);
    await check('after the failback');
    const ev = await t.evidence();
    expect(ev).to.have.failedOverTo(b1.activeSlave, { index: 0 }).within(failoverBudget(t.topology));
    expect(ev).to.have.failedOverTo(b0.activeSlave, { index: 1 });
  }, { requires: { capabilities: ['carrier'] } });

  test('BC-06 gratuitous ARP on failover: the peer sees exactly num_grat_arp announcements, peer_notify_delay apart, and updates its neighbour', async (t) => {
    const [node, peer] = t.pair();
    const bond = t.bondOf(node).name;
    const n = t.node(node);
    const prev = await readBond(n, bond);
    const count = 3;
    const delay = Math.max(prev.miimon, 100) * 2; // peer_notify_delay must be a multiple of miimon
    // num_grat_arp through sysfs; peer_notify_delay has no sysfs file on every kernel: netlink.
    const set = async (grat: number, notify: number) => {
      await n.writeFile(sysfsBond(bond, 'num_grat_arp'), String(grat));
      await n.run(['ip', 'link', 'set', 'dev', bond, 'type', 'bond', 'peer_notify_delay', String(notify)]);
    };
    await t.scope.use('num_grat_arp / peer_notify_delay', () => set(count, delay), () => set(prev.numGratArp, Number.isNaN(prev.peerNotifyDelay) ? 0 : prev.peerNotifyDelay));
    const now1 = await readBond(n, bond);
    expect({ grat: now1.numGratArp, delay: now1.peerNotifyDelay }, 'options took').to.deep.equal({ grat: count, delay });
    await t.monitor();
    const active = await t.bond(node);
    await t.inject(new CarrierLoss(node, active.activeSlave));
    await t.step('announcements go out', () => sleep(count * delay + 2000));
    const ev = await t.evidence();
    expect(ev).to.have.failedOverTo(active.backup);
    expect(ev).to.have.gratuitousArpSeenBy(peer, { count });
    // Spaced as bonding sends them (its own capture; see gratuitousArpSpaced): one tick early, or late.
    expect(ev).to.have.gratuitousArpSpaced({ delayMs: delay, tickMs: Math.max(prev.miimon, 1) });
    const tl = ev.timelines[0]!;
    expect(tl.phases.find((p) => p.id === 'neigh_updated')?.missing, 'peer neighbour entry updated').to.not.equal(true);
  }, { requires: { nodes: 2, capabilities: ['carrier'], tools: ['tcpdump'] } });

  test('BC-07 enslaved while down, the bond comes up with the right type, address, active slave and multicast list', async (t) => {
    // The fabric enslaves every slave while the bond is down (the kernel refuses up devices).
    for (const spec of t.bondedNodes()) {
      const { name, slaves } = t.bondOf(spec.name);
      const b = await readBond(t.node(spec.name), name);
      const slaveType = Number(await sys(t, spec.name, slaves[0]!, 'type'));
      expect(b.type, `${spec.name}/${name} type`).to.equal(slaveType);
      expect(b.slaves).to.have.members(slaves);
      expect(b.activeSlave, 'an active slave').to.be.oneOf(slaves);
      expect(b.address).to.equal(await sys(t, spec.name, b.activeSlave, 'address'));
      expect(b.operstate).to.equal('up');
      const maddr = JSON.parse((await t.node(spec.name).run(['ip', '-j', 'maddr', 'show', 'dev', name])).stdout) as { maddr?: { link?: string }[] }[];
      const link = (maddr[0]?.maddr ?? []).flatMap((m) => (m.link ? [m.link] : []));
      expect(link.length, 'link-layer multicast entries').to.be.greaterThan(0);
      for (const m of link) expect(m.split(':').length, `multicast ${m} has addr_len bytes`).to.equal(b.addrLen);
    }
  });

  test('BC-08 MTU: today\'s kernel sets the slave MTU to the bond\'s at enslave and restores it at release (the 2006 design said no MTU forcing) — recorded', async (t) => {
    const [node] = t.pair();
    await scratchBond(t, node, 'rfbc8', [{ name: 'rfbcd8', type: 'dummy' }, { name: 'rfbcn8', type: 'nlmon' }]);
    const n = t.node(node);
    await n.run(['ip', 'link', 'set', 'dev', 'rfbc8', 'mtu', '1400']);
    const eth = { before: Number(await sys(t, node, 'rfbcd8', 'mtu')) };
    expect(await enslave(t, node, 'rfbc8', 'rfbcd8')).to.equal(undefined);
    const ethEnslaved = Number(await sys(t, node, 'rfbcd8', 'mtu'));
    await n.writeFile(sysfsBond('rfbc8', 'slaves'), '-rfbcd8');
    const ethReleased = Number(await sys(t, node, 'rfbcd8', 'mtu'));
    // A non-Ethernet slave, on the now empty bond.
    const nl = { before: Number(await sys(t, node, 'rfbcn8', 'mtu')) };
    expect(await enslave(t, node, 'rfbc8', 'rfbcn8')).to.equal(undefined);
    const nlEnslaved = Number(await sys(t, node, 'rfbcn8', 'mtu'));
    const bondMtuWithNl = Number(await sys(t, node, 'rfbc8', 'mtu'));
    await n.writeFile(sysfsBond('rfbc8', 'slaves'), '-rfbcn8');
    const nlReleased = Number(await sys(t, node, 'rfbcn8', 'mtu'));
    const finding = {
      ethernet: { slaveBefore: eth.before, bond: 1400, slaveEnslaved: ethEnslaved, slaveReleased: ethReleased },
      nonEthernet: { slaveBefore: nl.before, bondAfterEnslave: bondMtuWithNl, slaveEnslaved: nlEnslaved, slaveReleased: nlReleased },
      forcesMtuAtEnslave: ethEnslaved === 1400,
      differsFrom2006Design: ethEnslaved === 1400 || nlEnslaved !== nl.before,
    };
    t.attach('BC-08 MTU behaviour of this kernel', finding);
    // What must hold whatever the policy: a released slave gets its own MTU back.
    expect(ethReleased, 'Ethernet slave MTU restored at release').to.equal(eth.before);
    expect(nlReleased, 'non-Ethernet slave MTU restored at release').to.equal(nl.before);
  });

  test('BC-08 (IPoIB) a bond MTU above the datagram-mode limit makes enslave fail cleanly', async (t) => {
    const [node] = t.pair();
    const parent = t.bondOf(node).slaves[0]!;
    await t.scope.use('IPoIB child', () => t.node(node).run(['ip', 'link', 'add', 'link', parent, 'name', 'rfbcib8', 'type', 'ipoib', 'pkey', '0x8bc8']), () => t.node(node).run(['ip', 'link', 'del', 'rfbcib8']).then(() => undefined));
    await t.node(node).writeFile('/sys/class/net/rfbcib8/mode', 'datagram');
    await scratchBond(t, node, 'rfbc8i', []);
    await t.node(node).run(['ip', 'link', 'set', 'dev', 'rfbc8i', 'mtu', '9000']);
    const err = await enslave(t, node, 'rfbc8i', 'rfbcib8');
    expect(err, 'enslaving a datagram-mode slave under a 9000-byte bond').to.be.instanceOf(FileWriteError);
    expect((await readBond(t.node(node), 'rfbc8i')).slaves).to.deep.equal([]);
  }, { requires: { linkTypes: ['ipoib'] } });

  test('BC-09 releasing the last slave: no crash, flags sane, and the bond becomes Ethernet again for the next Ethernet slave', async (t) => {
    const [node] = t.pair();
    await scratchBond(t, node, 'rfbc9', [{ name: 'rfbcn9', type: 'nlmon' }, { name: 'rfbcd9', type: 'dummy' }]);
    const n = t.node(node);
    expect(await enslave(t, node, 'rfbc9', 'rfbcn9')).to.equal(undefined);
    expect(Number(await sys(t, node, 'rfbc9', 'type'))).to.equal(ARPHRD_NETLINK);
    await n.writeFile(sysfsBond('rfbc9', 'slaves'), '-rfbcn9');
    const afterRelease = { type: Number(await sys(t, node, 'rfbc9', 'type')), flags: Number(await sys(t, node, 'rfbc9', 'flags')) };
    t.attach('BC-09 bond right after the last slave was released', { ...afterRelease, note: afterRelease.type === ARPHRD_ETHER ? 'type returned to Ethernet at release' : `type stays ${afterRelease.type} until the next slave is enslaved` });
    const IFF_MASTER = 0x400;
    const IFF_SLAVE = 0x800;
    expect(afterRelease.flags & IFF_MASTER, 'still a master').to.equal(IFF_MASTER);
    expect(afterRelease.flags & IFF_SLAVE, 'not a slave').to.equal(0);
    expect(await enslave(t, node, 'rfbc9', 'rfbcd9'), 'an Ethernet slave is accepted').to.equal(undefined);
    expect(Number(await sys(t, node, 'rfbc9', 'type')), 'type back to Ethernet').to.equal(ARPHRD_ETHER);
    expect(Number(await sys(t, node, 'rfbc9', 'addr_len'))).to.equal(6);
    expect((await n.exec(['true'])).exitCode, 'node alive').to.equal(0);
  });

  test('BC-10 both sides fail over at once with no gratuitous ARP: connectivity returns within the neighbour timeout', async (t) => {
    const [a, b] = t.pair();
    const ipB = t.bondOf(b).ip;
    for (const n of [a, b]) {
      const bond = t.bondOf(n).name;
      const prev = (await readBond(t.node(n), bond)).numGratArp;
      await t.scope.use(`num_grat_arp=0 on ${n}`, () => t.node(n).writeFile(sysfsBond(bond, 'num_grat_arp'), '0'), () => t.node(n).writeFile(sysfsBond(bond, 'num_grat_arp'), String(prev)));
    }
    // The bound the neighbour state machine gives: delay_first_probe + probes × retrans, with margin.
    const sysctl = async (k: string) => Number((await t.node(a).readFile(`/proc/sys/net/ipv4/neigh/${t.bondOf(a).name}/${k}`)).trim());
    const bound = (await sysctl('delay_first_probe_time')) * 1000 + ((await sysctl('ucast_solicit')) + (await sysctl('mcast_solicit')) + 1) * (await sysctl('retrans_time_ms')) + 2000;
    await t.monitor();
    const [sa, sb] = [await t.bond(a), await t.bond(b)];
    await Promise.all([t.inject(new CarrierLoss(a, sa.activeSlave)), t.inject(new CarrierLoss(b, sb.activeSlave))]);
    const t0 = now();
    const back = await t.step(`ping until it answers (bound ${bound} ms)`, async () => {
      for (;;) {
        const r = await t.node(a).exec(['ping', '-c', '1', '-W', '1', '-I', t.bondOf(a).name, ipB], { timeoutMs: 5000 });
        if (r.exitCode === 0) return now() - t0;
        if (now() - t0 > bound + 5000) return Infinity;
        await sleep(200);
      }
    });
    t.metric('connectivity restored', back);
    const ev = await t.evidence();
    expect(ev.events.filter((e) => e.source === 'arp' && e.gratuitous && e.t > t0), 'no GARP sent').to.deep.equal([]);
    expect(back, `connectivity restored within the neighbour timeout (${bound} ms)`).to.be.at.most(bound);
  }, { requires: { nodes: 2, capabilities: ['carrier'] } });
});
