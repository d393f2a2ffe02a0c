// The ULPs the harness knows. A new ULP is its module (harness/ulp/<name>.ts, plus its workload)
// and its spec file; this list is where it is registered.
import { iser } from './iser.ts';
import { nfs } from './nfs.ts';
import { nvme } from './nvme.ts';
import { rds } from './rds.ts';
import { rping } from './rping.ts';
import { srp } from './srp.ts';
import { lnet } from './lnet.ts';
import type { UlpModule } from './ulp.ts';

export const ULPS = { rds, rping, iser, nfs, nvme, srp, lnet } as const;

export type Ulp = keyof typeof ULPS;
export type UlpKmsgClass = (typeof ULPS)[Ulp]['kmsgClasses'][number][0];

export function allUlps(): readonly UlpModule[] {
  return Object.values(ULPS);
}

/** topology.workloads: one property per ULP, with its own schema (literal types kept). */
export function workloadProperties<T extends Record<string, UlpModule>>(m: T): { [K in keyof T]: T[K]['workloadSchema'] } {
  return Object.fromEntries(Object.entries(m).map(([k, u]) => [k, u.workloadSchema])) as { [K in keyof T]: T[K]['workloadSchema'] };
}

/** topology.budgets.reconnect_ms: one integer per ULP. */
export function budgetProperties<T extends Record<string, UlpModule>>(m: T): { [K in keyof T]: { readonly type: 'integer'; readonly minimum: 1 } } {
  return Object.fromEntries(Object.keys(m).map((k) => [k, { type: 'integer', minimum: 1 }])) as { [K in keyof T]: { readonly type: 'integer'; readonly minimum: 1 } };
}
