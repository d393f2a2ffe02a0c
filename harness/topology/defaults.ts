// Defaults applied where a topology is silent. Reconnect budgets come from the test plan's
// reconnect table (kernel and tool defaults) with margin for a software-emulated lab.
import type { BondSpec, Topology } from './schema.ts';
import { ULPS, type Ulp } from '../ulp/registry.ts';

export const bondDefaults = {
  mode: 'active-backup',
  miimon: 100,
  fail_over_mac: 'active',
  num_grat_arp: 1,
} as const satisfies Partial<BondSpec>;

export type { Ulp };

/** The reconnect budget of a ULP: the topology's, else its module's default. */
export function reconnectBudget(t: Topology, ulp: Ulp): number {
  return (t.budgets?.reconnect_ms)?.[ulp] ?? ULPS[ulp].reconnectBudgetMs;
}

export function failoverBudget(t: Topology): number {
  return t.budgets?.failover_ms ?? 2000;
}

/** RF-08: how long a ULP may take to come back when the bond sends no gratuitous ARP. */
export function noGarpBudget(t: Topology): number {
  return t.budgets?.no_garp_reconnect_ms ?? 120_000;
}

export function withBondDefaults(b: BondSpec): BondSpec & typeof bondDefaults {
  return { ...bondDefaults, ...b } as BondSpec & typeof bondDefaults;
}
