import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import './harness/assert/chai-failover.ts';
import { collectEvidence, type Evidence } from './harness/assert/evidence.ts';
const rec = JSON.parse(readFileSync(process.argv[2]!, 'utf8'));
const r = rec.evidence as Evidence;
const ev = collectEvidence({ recording: { ...r.recording, events: r.events }, faults: r.faults, bonds: r.bonds, connections: r.connections, workloads: r.workloads, allowKernel: r.allowKernel, ...(r.resources ? { resources: r.resources } : {}), ...(r.counters ? { counters: r.counters } : {}) } as never);
for (const [name, f] of [
  ['failedOver', () => expect(ev).to.have.failedOver({ node: 'node-a' })],
  ['deliveredEverything', () => expect(ev).to.have.deliveredEverything()],
  ['noKernelWarnings', () => expect(ev).to.have.noKernelWarnings()],
  ['noResourceLeak', () => expect(ev).to.have.noResourceLeak()],
] as const) {
  try { f(); console.log(name, 'ok'); } catch (e) { console.log(name, 'FAIL', (e as Error).message.slice(0, 2500)); }
}
