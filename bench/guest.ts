// Benchmark: what one command costs on an emulated guest, and what the harness's per-test remote
// scripts cost there — each way side by side, alternating round by round on the same lab.
//   - a round trip: `true`, and `sh -c true` (the shell the scripts need), through the command
//     agent and on a channel of its own (RDMA_FAILOVER_AGENT=0), 10 of each per round
//   - the health probe (PROBE_SCRIPT, one round trip)
//   - the reads before a module unload: the five reads it made before (three at once, then two at
//     once, each its own round trip) vs the one survey script
//   - unloading a ULP's modules: RMMOD_EACH (each rmmod in the background, polled, so a hung one
//     cannot hold the script) vs a plain `rmmod` of each in turn
// Uses the running VM lab of the default topology, or brings one up (and leaves it up).
// Usage: npm run bench:guest [-- ROUNDS]
import { performance } from 'node:perf_hooks';
import { loadTopology } from '../harness/topology/load.ts';
import { labUp } from '../harness/vmlab/vm-lab.ts';
import { fabricDown, fabricUp } from '../harness/fabric/fabric.ts';
import { PROBE_SCRIPT, STUCK_SCRIPT, FREED_IN_USE } from '../harness/health/health.ts';
import { RMMOD_EACH, modulesToLoad, surveyUnload } from '../harness/workload/modules.ts';
import type { Node } from '../harness/node/node.ts';

const ROUNDS = Number(process.argv[2] ?? 10);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const ms = (x: number) => `${x.toFixed(0)} ms`;

async function time(f: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await f();
  return performance.now() - t;
}

/** The reads unloadModules made before the survey: stuck tasks, /proc/modules and the kernel log at once, then the cm_ids and holders at once. */
async function fiveReads(node: Node, modules: string[]): Promise<void> {
  await Promise.all([
    node.exec(['sh', '-c', STUCK_SCRIPT], { timeoutMs: 15_000 }),
    node.run(['cat', '/proc/modules'], { timeoutMs: 15_000 }),
    node.exec(['sh', '-c', `dmesg 2>/dev/null | grep -A 60 -E '${FREED_IN_USE}' || true`], { timeoutMs: 15_000 }),
  ]);
  await Promise.all([
    node.exec(['rdma', '-j', 'res', 'show', 'cm_id'], { timeoutMs: 15_000 }),
    node.exec(['sh', '-c', 'for m; do printf "%s:" "$m"; ls "/sys/module/$m/holders" 2>/dev/null | tr "\\n" " "; echo; done', 'holders', ...modules], { timeoutMs: 15_000 }),
  ]);
}

const loaded = loadTopology('topologies/vm-rxe.yaml');
const lab = await labUp(loaded, { reuse: true });
const fabric = await fabricUp(lab);
try {
  const node = lab.node(loaded.topology.nodes[0]!.name);
  // NVMe/RDMA's host modules: what a storage test loads and unloads on its initiator
  const wanted = ['nvme_rdma'];
  const mods = await modulesToLoad(node, wanted);
  if (!mods.length) throw new Error('nvme_rdma is loaded already: run this on a lab between tests');
  const r = { agentTrue: [] as number[], channelTrue: [] as number[], agentCat: [] as number[], channelCat: [] as number[], true: [] as number[], sh: [] as number[], probe: [] as number[], five: [] as number[], survey: [] as number[], rmmodEach: [] as number[], rmmodPlain: [] as number[] };
  const tenOf = (argv: string[], agent: boolean) => time(async () => {
    if (agent) delete process.env.RDMA_FAILOVER_AGENT;
    else process.env.RDMA_FAILOVER_AGENT = '0';
    try {
      for (let k = 0; k < 10; k++) await node.run(argv);
    } finally {
      delete process.env.RDMA_FAILOVER_AGENT;
    }
  }).then((t) => t / 10);
  const sysfs = ['cat', '/sys/class/net/bond0/bonding/mode'];
  for (let i = 0; i < ROUNDS; i++) {
    // which way goes first alternates round by round
    for (const agent of i % 2 ? [false, true] : [true, false]) {
      (agent ? r.agentTrue : r.channelTrue).push(await tenOf(['true'], agent));
      (agent ? r.agentCat : r.channelCat).push(await tenOf(sysfs, agent));
    }
    r.true.push(await time(() => node.run(['true'])));
    r.sh.push(await time(() => node.run(['sh', '-c', 'true'])));
    r.probe.push(await time(() => node.exec(['sh', '-c', PROBE_SCRIPT], { timeoutMs: 30_000 })));
    await node.run(['modprobe', '-a', ...wanted], { timeoutMs: 60_000 });
    r.five.push(await time(() => fiveReads(node, mods)));
    r.survey.push(await time(() => surveyUnload(node, mods)));
    const order = [...mods].reverse();
    // which unload goes first alternates round by round (the guest's caches warm either way)
    const each = () => time(async () => {
      const x = await node.exec(['sh', '-c', RMMOD_EACH, 'rmmod-each', '20', ...order], { timeoutMs: 60_000 });
      if (!/ok /.test(x.stdout)) throw new Error(`rmmod-each: ${x.stdout}${x.stderr}`);
    });
    const plain = () => time(() => node.exec(['sh', '-c', 'for m; do rmmod "$m"; done', 'rmmod', ...order], { timeoutMs: 60_000 }));
    const [first, second] = i % 2 ? [plain, each] : [each, plain];
    const a = await first();
    await node.run(['modprobe', '-a', ...wanted], { timeoutMs: 60_000 });
    const b = await second();
    r.rmmodEach.push(i % 2 ? b : a);
    r.rmmodPlain.push(i % 2 ? a : b);
  }
  const m = Object.fromEntries(Object.entries(r).map(([k, v]) => [k, median(v)])) as { [K in keyof typeof r]: number };
  console.log(`guest round trips on ${node.name} (${loaded.topology.name}), medians of ${ROUNDS} rounds:`);
  console.log(`  true, one after another:       through the agent ${ms(m.agentTrue)}, a channel each ${ms(m.channelTrue)}  (ratio ${(m.channelTrue / m.agentTrue).toFixed(2)})`);
  console.log(`  cat of a sysfs file:           through the agent ${ms(m.agentCat)}, a channel each ${ms(m.channelCat)}  (ratio ${(m.channelCat / m.agentCat).toFixed(2)})`);
  console.log(`  true:                          ${ms(m.true)}`);
  console.log(`  sh -c true:                    ${ms(m.sh)}`);
  console.log(`  health probe script:           ${ms(m.probe)}`);
  console.log(`  reads before an unload: 5 reads in 2 waves ${ms(m.five)}, one survey ${ms(m.survey)}  (ratio ${(m.five / m.survey).toFixed(2)})`);
  console.log(`  unload ${listed(mods)}: RMMOD_EACH ${ms(m.rmmodEach)}, plain rmmod ${ms(m.rmmodPlain)}  (ratio ${(m.rmmodEach / m.rmmodPlain).toFixed(2)})`);
} finally {
  await fabricDown(lab, fabric.record);
  await lab.close();
}

function listed(mods: string[]): string {
  return `${mods.length} modules (${[...mods].reverse().join(', ')})`;
}
