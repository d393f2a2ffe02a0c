// A ULP module declares everything the harness needs to know about one upper-layer protocol: its
// topology options (a JSON schema fragment), reconnect budget, kernel log classes, kernel modules,
// tools, and the code its stuck tasks sit in. The rest of the harness reads the registry
// (registry.ts); the workload itself lives in harness/workload/, its tests in suites/<ulp>.*.spec.ts.
import type { LabEvent } from '../monitor/events.ts';

/** How the ULP notices a path that died silently (RF-09: no carrier change, no CM event). */
export interface UlpLiveness {
  /** its own timer, in words (with the setting that bounds it) */
  readonly timer: string;
  /** the documented bound: the timer fires within this many ms of the path's death */
  readonly boundMs: number;
  /** is this event the timer firing (on the client, towards the server at serverIp)? */
  readonly fired: (e: LabEvent, serverIp: string) => boolean;
  /** what shows it fired, for the failure message */
  readonly shows: string;
}

/** RDMA transports: InfiniBand, RoCE (HCAs or rxe), iWARP (NICs or siw). */
export type RdmaTransport = 'ib' | 'roce' | 'iwarp';

/** Where a ULP cannot run, and why (a source line, an exact error). */
export interface UlpRestriction {
  /** transports, or bond slave link types (the topology schema's slave `link`; spelled out here:
   *  the schema is built from the ULP modules) */
  readonly on: readonly (RdmaTransport | 'ipoib' | 'roce' | 'rxe' | 'siw')[];
  readonly why: string;
}

export interface UlpModule {
  /** key in the topology (workloads.<name>, budgets.reconnect_ms.<name>) and in reports */
  readonly name: string;
  /** how people write it */
  readonly title: string;
  /** the test plan ID of its failover suite */
  readonly planId: string;
  /** default reconnect budget (the test plan's reconnect table, with margin for an emulated lab) */
  readonly reconnectBudgetMs: number;
  /** the JSON schema of topology.workloads.<name> */
  readonly workloadSchema: { readonly type: 'object'; readonly additionalProperties: false; readonly properties: Readonly<Record<string, unknown>> };
  /** options of that schema that name nodes (checked against the topology's nodes) */
  readonly nodeFields: readonly string[];
  /** kernel log classes of its messages, most specific first */
  readonly kmsgClasses: readonly (readonly [string, RegExp])[];
  /** kernel modules, and which side needs each */
  readonly modules: readonly { readonly name: string; readonly neededBy: string }[];
  /** modules whose parameters go into the report's environment */
  readonly paramModules?: readonly string[];
  /** user-space tools: command, Debian package, which side needs it */
  readonly tools: readonly { readonly name: string; readonly pkg: string; readonly neededBy: string }[];
  /** a stuck task whose stack matches this sits in this ULP's code (node health) */
  readonly stackPattern: RegExp;
  /** where it cannot run: an RDMA transport (iwarp) or a bond slave link type (siw), with why —
   *  its suites are SKIPPED there with that reason */
  readonly unsupported?: readonly UlpRestriction[];
  /** its liveness timer (storage ULPs' RF-09) */
  readonly liveness?: UlpLiveness;
}

/** Declares a ULP module; `as const` on the argument keeps its schema's literal types. */
export function defineUlp<const U extends UlpModule>(u: U): U {
  return u;
}
