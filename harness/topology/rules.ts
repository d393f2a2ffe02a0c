// Cross-field rules the schema cannot express, and domain warnings.
// Errors are what the kernel (or the harness) would refuse; warnings are legal setups that will not
// test what the user probably thinks they test.
import { allUlps } from '../ulp/registry.ts';
import type { Topology } from './schema.ts';
import type { TopologyIssue } from './issues.ts';
import type { SourceMap } from './load.ts';
import { parseCidr } from '../net/ip.ts';
import { bondDefaults } from './defaults.ts';

type Path = (string | number)[];

export function checkRules(t: Topology, src: SourceMap): TopologyIssue[] {
  const out: TopologyIssue[] = [];
  const err = (path: Path, msg: string, key = false) => out.push(src.issue('error', path, msg, { key }));
  const warn = (path: Path, msg: string, key = false) => out.push(src.issue('warning', path, msg, { key }));

  const nodeNames = new Map<string, number>();
  const ips = new Map<string, Path>();
  t.nodes.forEach((node, ni) => {
    const np: Path = ['nodes', ni];
    const prev = nodeNames.get(node.name);
    if (prev !== undefined) err([...np, 'name'], `duplicate node name "${node.name}" (first used by nodes[${prev}])`);
    else nodeNames.set(node.name, ni);

    const accessType = node.access?.type;
    if (t.kind === 'vm' && accessType && accessType !== 'vm') {
      err([...np, 'access', 'type'], `a vm lab reaches its guests itself: access.type must be "vm" or left out (got "${accessType}")`);
    }
    if (t.kind === 'real' && !node.access) err(np, 'missing required key "access": a real lab must say how to reach each node');
    if (t.kind === 'real' && accessType === 'vm') err([...np, 'access', 'type'], 'access.type "vm" is only for kind: vm');
    if (node.access?.type === 'ssh' && node.access.host_key?.insecure_accept_any) {
      warn([...np, 'access', 'host_key', 'insecure_accept_any'], 'host key verification is OFF for this node: anyone on the path can impersonate it (throwaway labs only)');
    }
    if (node.access?.type === 'ssh' && node.access.identity_file && node.access.agent) {
      warn([...np, 'access', 'agent'], 'both identity_file and agent given: the identity file is tried first');
    }

    const ifnames = new Map<string, Path>();
    (node.bonds ?? []).forEach((bond, bi) => {
      const bp: Path = [...np, 'bonds', bi];
      const opts = { ...bondDefaults, ...bond };
      if (ifnames.has(bond.name)) err([...bp, 'name'], `interface "${bond.name}" is used twice on node "${node.name}"`);
      ifnames.set(bond.name, [...bp, 'name']);

      const cidr = parseCidr(bond.address);
      if (!cidr.ok) err([...bp, 'address'], cidr.error);
      else {
        const other = ips.get(cidr.ip);
        if (other) err([...bp, 'address'], `duplicate IP ${cidr.ip} (also at ${formatPathShort(other)})`);
        else ips.set(cidr.ip, [...bp, 'address']);
      }

      const links = new Set(bond.slaves.map((s) => s.link));
      bond.slaves.forEach((s, si) => {
        const sp: Path = [...bp, 'slaves', si];
        if (ifnames.has(s.name)) err([...sp, 'name'], `interface "${s.name}" is used twice on node "${node.name}"`);
        ifnames.set(s.name, [...sp, 'name']);
        if (t.kind === 'vm' && s.link !== 'rxe' && s.link !== 'siw') {
          err([...sp, 'link'], `the vm lab's NICs are Ethernet with a soft RDMA transport: link must be "rxe" (soft RoCE) or "siw" (soft iWARP) (got "${s.link}"); IPoIB needs real HCAs`);
        }
        if (t.kind === 'real' && !s.carrier) {
          warn(sp, 'no carrier commands: carrier-loss faults on this slave fall back to "ip link set down" (admin down, not a real carrier loss)');
        }
      });
      if (links.size > 1) {
        const first = bond.slaves[0]?.link;
        const bad = bond.slaves.findIndex((s) => s.link !== first);
        err([...bp, 'slaves', bad, 'link'],
          `slaves of mixed link types (${[...links].join(', ')}): the bond's type follows its first slave and the kernel refuses a slave of another type (EINVAL)`);
      }
      const soft = bond.rdma?.type;
      if ((soft === 'rxe' || soft === 'siw') && bond.slaves.some((s) => s.link !== soft)) {
        const bad = bond.slaves.findIndex((s) => s.link !== soft);
        err([...bp, 'slaves', bad, 'link'], `rdma.type ${soft} runs over this bond's Ethernet slaves, so their link must be "${soft}" too (got "${bond.slaves[bad]!.link}")`);
      }
      const isIpoib = links.has('ipoib');
      if (isIpoib && opts.mode !== 'active-backup') {
        err([...bp, 'mode'], `IPoIB slaves work only in active-backup: the kernel refuses mode "${opts.mode}" (EOPNOTSUPP)`);
      } else if (opts.mode !== 'active-backup') {
        err([...bp, 'mode'], `the harness tests active-backup failover; mode "${opts.mode}" is not supported`);
      }
      if (isIpoib && bond.fail_over_mac && bond.fail_over_mac !== 'active') {
        warn([...bp, 'fail_over_mac'], `IPoIB slaves cannot change their address, so the kernel forces fail_over_mac=active; "${bond.fail_over_mac}" will be ignored`);
      }
      if (!isIpoib && opts.fail_over_mac !== 'active') {
        warn([...bp, bond.fail_over_mac ? 'fail_over_mac' : 'name'],
          `fail_over_mac=${opts.fail_over_mac} on an Ethernet/RoCE bond: the bond keeps its MAC on failover, so the RDMA CM never sends RDMA_CM_EVENT_ADDR_CHANGE (cma_netdev_callback only reacts when the bond's hardware address changes); use "active" to test the same path as IPoIB`);
      }
      if (bond.primary && !bond.slaves.some((s) => s.name === bond.primary)) {
        err([...bp, 'primary'], `primary "${bond.primary}" is not one of this bond's slaves (${bond.slaves.map((s) => s.name).join(', ')})`);
      }
      if (opts.miimon === 0 && !bond.arp_interval) {
        warn([...bp, 'miimon'], 'miimon is 0 and arp_interval is unset: the bond never notices a failed link');
      }
      if (bond.arp_interval && !bond.arp_ip_target?.length) {
        err([...bp, 'arp_interval'], 'arp_interval needs at least one arp_ip_target');
      }
      if (bond.slaves.length < 2) warn([...bp, 'slaves'], 'a bond with one slave has nothing to fail over to');
      if (bond.mtu && isIpoib && bond.mtu > 4092) {
        warn([...bp, 'mtu'], `MTU ${bond.mtu} is above the IPoIB datagram-mode limit (2044/4092): enslaving a datagram-mode slave will fail`);
      }
    });
  });

  // Every node name referenced by workloads must exist.
  const refs: [Path, string | undefined][] = [];
  const w = t.workloads ?? {};
  // Each ULP's module says which of its options name nodes (harness/ulp/).
  for (const u of allUlps()) {
    const opts = (w as Record<string, Record<string, unknown> | undefined>)[u.name];
    for (const f of u.nodeFields) {
      const v = opts?.[f];
      if (Array.isArray(v)) v.forEach((n, i) => refs.push([['workloads', u.name, f, i], typeof n === 'string' ? n : undefined]));
      else if (typeof v === 'string') refs.push([['workloads', u.name, f], v]);
    }
  }
  t.nodes.forEach((node, ni) =>
    node.bonds?.forEach((b, bi) =>
      b.slaves.forEach((s, si) => {
        if (s.carrier?.node) refs.push([['nodes', ni, 'bonds', bi, 'slaves', si, 'carrier', 'node'], s.carrier.node]);
      }),
    ),
  );
  for (const [path, name] of refs) {
    if (name !== undefined && !nodeNames.has(name)) {
      err(path, `unknown node "${name}" (nodes are: ${[...nodeNames.keys()].join(', ')})`);
    }
  }

  if (t.kind === 'vm') {
    const switches = t.vm?.switches ?? ['a', 'b'];
    t.nodes.forEach((node, ni) =>
      node.bonds?.forEach((b, bi) =>
        b.slaves.forEach((s, si) => {
          if (s.switch && !switches.includes(s.switch)) {
            err(['nodes', ni, 'bonds', bi, 'slaves', si, 'switch'], `unknown switch "${s.switch}" (switches are: ${switches.join(', ')})`);
          }
          if (s.carrier) err(['nodes', ni, 'bonds', bi, 'slaves', si, 'carrier'], 'a vm lab cuts carrier through QEMU itself: carrier commands are for real labs', true);
        }),
      ),
    );
  } else if (t.vm) {
    err(['vm'], 'the "vm" section is only for kind: vm', true);
  }
  for (const [i, p] of (t.health?.allow_kernel_patterns ?? []).entries()) {
    try {
      new RegExp(p.pattern);
    } catch (e) {
      err(['health', 'allow_kernel_patterns', i, 'pattern'], `not a valid regular expression: ${(e as Error).message}`);
    }
  }
  return out;
}

function formatPathShort(p: Path): string {
  return p.map((s) => (typeof s === 'number' ? `[${s}]` : `.${s}`)).join('').replace(/^\./, '');
}
