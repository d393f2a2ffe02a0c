// Benchmark: wall time of `lab up` for 2 and 3 guests (median of fresh boots), QEMU memory per
// guest, and fabric bring-up time. For 2 guests the kernel's PVH boot and its bzImage boot
// alternate, round by round, so their ratio is measured side by side on the same machine state.
// Usage: npm run bench:lab [-- ROUNDS]
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { loadTopology } from '../harness/topology/load.ts';
import { labDown, labUp } from '../harness/vmlab/vm-lab.ts';
import { fabricUp } from '../harness/fabric/fabric.ts';

const ROUNDS = Number(process.argv[2] ?? 3);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const rssMiB = (pid: number) => {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
};
const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

for (const [file, modes] of [['topologies/vm-rxe.yaml', ['pvh', 'bzimage']], ['topologies/vm-rxe-3node.yaml', ['pvh']]] as const) {
  const loaded = loadTopology(file);
  await labDown(loaded.topology.name);
  const runs = new Map<string, { ups: number[]; fabrics: number[]; both: number[]; mem: number[] }>(modes.map((m) => [m, { ups: [], fabrics: [], both: [], mem: [] }]));
  for (let i = 0; i < ROUNDS; i++) {
    for (const mode of modes) {
      const r = runs.get(mode)!;
      if (mode === 'bzimage') process.env.RDMA_FAILOVER_BOOT = 'bzimage';
      else delete process.env.RDMA_FAILOVER_BOOT;
      const t0 = performance.now();
      const lab = await labUp(loaded, { reuse: false });
      const tUp = performance.now() - t0;
      const f = await fabricUp(lab);
      r.ups.push(tUp);
      r.fabrics.push(f.durationMs);
      r.both.push(performance.now() - t0);
      for (const g of lab.state.guests) r.mem.push(rssMiB(g.pid!));
      await lab.close();
      await labDown(loaded.topology.name);
    }
  }
  delete process.env.RDMA_FAILOVER_BOOT;
  const n = loaded.topology.nodes.length;
  for (const [mode, r] of runs) {
    console.log(`${n} guests (${file}), ${mode} boot, ${ROUNDS} fresh boots:`);
    console.log(`  lab up:            median ${s(median(r.ups))}  (runs: ${r.ups.map((u) => (u / 1000).toFixed(1)).join(', ')})`);
    console.log(`  fabric up:         median ${s(median(r.fabrics))}`);
    console.log(`  lab up + fabric:   median ${s(median(r.both))}`);
    console.log(`  QEMU RSS per guest after fabric up: median ${median(r.mem).toFixed(0)} MiB (max ${Math.max(...r.mem).toFixed(0)} MiB; guest RAM ${loaded.topology.vm?.memory_mib ?? 512} MiB)`);
  }
  if (runs.size === 2) {
    const [a, b] = [...runs.values()];
    console.log(`  PVH / bzImage, lab up: ${(median(a!.ups) / median(b!.ups)).toFixed(2)} (medians, same rounds)`);
  }
}
