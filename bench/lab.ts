// Benchmark: wall time of `lab up` for 2 and 3 guests (median of 3 fresh boots each), QEMU memory
// per guest, and fabric bring-up time. Usage: npm run bench:lab [-- ROUNDS]
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

for (const file of ['topologies/vm-rxe.yaml', 'topologies/vm-rxe-3node.yaml']) {
  const loaded = loadTopology(file);
  await labDown(loaded.topology.name);
  const ups: number[] = [];
  const fabrics: number[] = [];
  const both: number[] = [];
  const mem: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const t0 = performance.now();
    const lab = await labUp(loaded, { reuse: false });
    const tUp = performance.now() - t0;
    const f = await fabricUp(lab);
    ups.push(tUp);
    fabrics.push(f.durationMs);
    both.push(performance.now() - t0);
    for (const g of lab.state.guests) mem.push(rssMiB(g.pid!));
    await lab.close();
    await labDown(loaded.topology.name);
  }
  const n = loaded.topology.nodes.length;
  console.log(`${n} guests (${file}), ${ROUNDS} fresh boots:`);
  console.log(`  lab up:            median ${(median(ups) / 1000).toFixed(1)} s  (runs: ${ups.map((u) => (u / 1000).toFixed(1)).join(', ')})`);
  console.log(`  fabric up:         median ${(median(fabrics) / 1000).toFixed(1)} s`);
  console.log(`  lab up + fabric:   median ${(median(both) / 1000).toFixed(1)} s`);
  console.log(`  QEMU RSS per guest after fabric up: median ${median(mem).toFixed(0)} MiB (max ${Math.max(...mem).toFixed(0)} MiB; guest RAM ${loaded.topology.vm?.memory_mib ?? 512} MiB)`);
}
