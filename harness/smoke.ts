// The smoke check: an RDMA CM connection over the bond, a real carrier loss on the active slave,
// and a new RDMA CM connection over the new active slave. Works on any lab with carrier control.
import { now, sleep } from './clock.ts';
import { readBond } from './fabric/bond.ts';
import type { Lab } from './lab/lab.ts';
import type { Node } from './node/node.ts';
import { ipOf } from './net/ip.ts';
import { measureClockOffset } from './node/clock-offset.ts';
import { CarrierLoss } from './fault/fault.ts';

/** Prints "EPOCH NEW_ACTIVE" when the bond's active slave is no longer $2; gives up after 10 s. */
const WATCH_ACTIVE = `f=/sys/class/net/$1/bonding/active_slave
end=$(( \${EPOCHSECONDS} + 10 ))
while [ "\${EPOCHSECONDS}" -lt "$end" ]; do
  read -r a < "$f"
  if [ -n "$a" ] && [ "$a" != "$2" ]; then echo "\${EPOCHREALTIME} $a"; exit 0; fi
  sleep 0.01
done
exit 1`;

export interface SmokeResult {
  client: string;
  server: string;
  before: { activeSlave: string; bondAddress: string; rpingOk: boolean };
  after: { activeSlave: string; bondAddress: string; rpingOk: boolean };
  failoverMs: number;
  faultedSlave: string;
  carrierMethod: string;
  ok: boolean;
  problems: string[];
}

/** One rping exchange (count pings) between client and server; true when every ping came back. */
export async function rpingOnce(client: Node, server: Node, serverIp: string, count = 3, port = 7174): Promise<{ ok: boolean; output: string }> {
  const srv = server.exec(['timeout', '30', 'rping', '-s', '-a', serverIp, '-p', String(port), '-C', String(count), '-v'], { timeoutMs: 40_000 });
  // rping has no "listening" signal: retry the client until the server accepts.
  let out = '';
  for (let i = 0; i < 20; i++) {
    await sleep(300);
    const r = await client.exec(['timeout', '20', 'rping', '-c', '-a', serverIp, '-p', String(port), '-C', String(count), '-v'], { timeoutMs: 30_000 });
    out = r.stdout + r.stderr;
    const pings = (r.stdout.match(/^ping data: rdma-ping-\d+/gm) ?? []).length;
    if (pings >= count) {
      await srv.catch(() => undefined);
      return { ok: true, output: out };
    }
    if (!/rdma_connect|REJECTED|connect error|cma event RDMA_CM_EVENT_REJECTED/.test(out)) break;
  }
  const s = await srv.catch((e: Error) => ({ stdout: '', stderr: e.message }));
  return { ok: false, output: `${out}\nserver: ${s.stdout}${s.stderr}` };
}

export async function smoke(lab: Lab, opts: { client?: string; server?: string; log?: (m: string) => void } = {}): Promise<SmokeResult> {
  const log = opts.log ?? (() => undefined);
  const specs = lab.loaded.topology.nodes.filter((n) => n.bonds?.length);
  const clientSpec = specs.find((n) => n.name === opts.client) ?? specs[0];
  const serverSpec = specs.find((n) => n.name === opts.server) ?? specs.find((n) => n !== clientSpec);
  if (!clientSpec || !serverSpec) throw new Error('the smoke check needs two nodes with a bond');
  if (!lab.carrier) throw new Error('this lab has no carrier control (add carrier commands to the topology)');
  const client = lab.node(clientSpec.name);
  const server = lab.node(serverSpec.name);
  const bond = clientSpec.bonds![0]!.name;
  const serverIp = ipOf(serverSpec.bonds![0]!.address);
  const problems: string[] = [];

  const b0 = await readBond(client, bond);
  log(`${client.name}/${bond}: active slave ${b0.activeSlave}, address ${b0.address}`);
  const r0 = await rpingOnce(client, server, serverIp);
  log(`rping ${client.name} → ${server.name} (${serverIp}) before the fault: ${r0.ok ? 'ok' : 'FAILED'}`);
  if (!r0.ok) problems.push(`rping before the fault failed:\n${r0.output}`);

  const faulted = b0.activeSlave;
  // Watch the bond on the node itself (10 ms polls, node clock), so the figure is not SSH latency.
  const offset = await measureClockOffset(client);
  const watch = client.exec(['bash', '-c', WATCH_ACTIVE, 'watch', bond, faulted], { timeoutMs: 15_000 });
  await sleep(300);
  // Through the fault (not the raw capability): its restore is journaled first, so a smoke check
  // killed here leaves nothing cut — the next run, or `rdma-failover fabric down`, heals it.
  const cut = new CarrierLoss(client.name, faulted);
  const ctx = { lab, record: () => undefined };
  const t0 = now();
  await cut.inject(ctx);
  log(`cut the carrier of ${client.name}/${faulted} (${lab.carrier.method})`);
  try {
    const w = await watch;
    const [stamp, newActive] = w.stdout.trim().split(' ');
    const seenAt = Number(stamp) * 1000 - offset.offsetMs;
    const failoverMs = seenAt - t0;
    const b1 = await readBond(client, bond);
    if (w.exitCode !== 0 || !newActive) problems.push(`the bond did not fail over within 10 s (active slave still ${b1.activeSlave || 'none'})`);
    else log(`bond failed over to ${newActive} ${failoverMs.toFixed(0)} ms after the cut (±${(offset.boundMs + 10).toFixed(0)} ms)`);
    if (b1.address === b0.address) problems.push(`the bond address did not change (${b1.address}): fail_over_mac is not "active"?`);
    else log(`bond address changed ${b0.address} → ${b1.address}`);
    const r1 = await rpingOnce(client, server, serverIp, 3, 7175);
    log(`new rping connection over ${b1.activeSlave}: ${r1.ok ? 'ok' : 'FAILED'}`);
    if (!r1.ok) problems.push(`rping after the failover failed:\n${r1.output}`);
    return {
      client: client.name,
      server: server.name,
      before: { activeSlave: b0.activeSlave, bondAddress: b0.address, rpingOk: r0.ok },
      after: { activeSlave: b1.activeSlave, bondAddress: b1.address, rpingOk: r1.ok },
      failoverMs,
      faultedSlave: faulted,
      carrierMethod: lab.carrier.method,
      ok: problems.length === 0,
      problems,
    };
  } finally {
    await cut.heal(ctx);
    log(`restored the carrier of ${client.name}/${faulted}`);
  }
}
