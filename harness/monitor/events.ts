// Typed, timestamped events: what every monitor emits and what the timeline is built from.
// `t` is always on the controller's clock (epoch ms); `nodeT` is the node's own reading when
// the source carried one. Pure data, JSON-serialisable.

interface Base {
  /** controller epoch ms */
  t: number;
  node: string;
  /** the line or record this came from, for evidence */
  raw?: string;
}

export interface BondEvent extends Base {
  source: 'bond';
  bond: string;
  activeSlave: string;
  address: string;
  miiStatus: string;
  /** carrier of each slave (sysfs), "1"/"0" */
  carriers: Record<string, string>;
  /** what changed compared to the previous sample (empty for the first one) */
  changed: ('active_slave' | 'address' | 'mii_status' | `carrier:${string}`)[];
}

export interface LinkEvent extends Base {
  source: 'link';
  ifname: string;
  /** NO-CARRIER in the flags */
  carrier: boolean;
  adminUp: boolean;
  operstate: string;
  address?: string;
  master?: string;
  /** what the kernel said happened: BONDING FAILOVER, NOTIFY PEERS… */
  event?: string;
}

export interface NeighEvent extends Base {
  source: 'neigh';
  ip: string;
  dev: string;
  lladdr?: string;
  state: string;
  deleted: boolean;
}

export interface ArpEvent extends Base {
  source: 'arp';
  ifname: string;
  direction: 'in' | 'out' | 'unknown';
  op: 'request' | 'reply';
  senderIp: string;
  senderMac: string;
  targetIp: string;
  targetMac?: string;
  /** sender IP == target IP: an announcement (gratuitous ARP) */
  gratuitous: boolean;
  ethSrc?: string;
}

export interface CmaEvent extends Base {
  source: 'cma';
  /** tracepoint name, e.g. cm_event_handler, cm_send_req, cm_id_destroy */
  point: string;
  cmId?: number;
  src?: string;
  dst?: string;
  /** for cm_event_handler: ADDR_CHANGE, ESTABLISHED… (without the RDMA_CM_EVENT_ prefix) */
  event?: string;
  status?: number;
  fields: Record<string, string>;
  /** the traced task: which worker ran it */
  pid?: number;
}

export interface RpcrdmaEvent extends Base {
  source: 'rpcrdma';
  point: string;
  fields: Record<string, string>;
  text: string;
}

export type KmsgClass =
  | 'bonding'
  | 'rxe'
  | 'siw'
  | 'cma-addr-change'
  | 'rds'
  | 'iser'
  | 'isert'
  | 'rpcrdma'
  | 'nvme'
  | 'srp'
  | 'warning'
  | 'bug'
  | 'oops'
  | 'hung'
  | 'refcount'
  | 'kasan'
  | 'gpf'
  | 'unhandled-cm'
  | 'panic'
  | 'marker'
  | 'other';

export interface KmsgEvent extends Base {
  source: 'kmsg';
  level: number;
  /** seconds since boot, as the kernel printed it */
  kernelTs: number;
  text: string;
  cls: KmsgClass;
}

export interface ResEvent extends Base {
  source: 'res';
  /** the cm_id list describes an instant between t and until (when the poller says) */
  until?: number;
  cmIds: { cmIdn?: number; state: string; srcAddr?: string; dstAddr?: string; srcPort?: number; dstPort?: number; comm?: string; pid?: number; ps?: string; lqpn?: number }[];
  qps: { lqpn: number; type: string; state: string; comm?: string; ifname: string }[];
}

export interface WorkloadEvent extends Base {
  source: 'workload';
  workload: string;
  /** progress: a counter moved; state: connecting/connected/…; error: the tool said so */
  kind: 'progress' | 'state' | 'error' | 'final';
  /** monotonically growing count of completed I/O units (messages, pings, bytes) */
  done?: number;
  state?: string;
  data?: Record<string, unknown>;
}

export interface FaultEvent extends Base {
  source: 'fault';
  kind: 'inject' | 'heal';
  fault: string;
  target?: { node: string; ifname?: string };
  description: string;
}

export interface StepEvent extends Base {
  source: 'step';
  name: string;
  phase: 'start' | 'end';
}

export type LabEvent = BondEvent | LinkEvent | NeighEvent | ArpEvent | CmaEvent | RpcrdmaEvent | KmsgEvent | ResEvent | WorkloadEvent | FaultEvent | StepEvent;
export type EventSource = LabEvent['source'];
