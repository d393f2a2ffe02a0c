// RDMA devices, links and resources as data, from `rdma -j`.

export interface RdmaDevice {
  ifindex: number;
  ifname: string;
  nodeType?: string;
  fw?: string;
  nodeGuid?: string;
}

export interface RdmaLink {
  ifname: string;
  port: number;
  state: string;
  physicalState?: string;
  netdev?: string;
}

export interface RdmaCmId {
  ifname?: string;
  port?: number;
  cmIdn?: number;
  qpType?: string;
  state: string;
  ps?: string;
  pid?: number;
  comm?: string;
  srcAddr?: string;
  srcPort?: number;
  dstAddr?: string;
  dstPort?: number;
  /** the id's QP number (`lqpn`), once it has one */
  lqpn?: number;
}

export interface RdmaQp {
  ifname: string;
  port?: number;
  lqpn: number;
  rqpn?: number;
  type: string;
  state: string;
  pid?: number;
  comm?: string;
}

function arr(text: string): Record<string, unknown>[] {
  const t = text.trim();
  if (!t) return [];
  const v: unknown = JSON.parse(t);
  return Array.isArray(v) ? (v as Record<string, unknown>[]) : [];
}
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);

export function parseRdmaDevices(text: string): RdmaDevice[] {
  return arr(text).map((d) => ({
    ifindex: num(d.ifindex) ?? 0,
    ifname: str(d.ifname) ?? '',
    ...(str(d.node_type) ? { nodeType: str(d.node_type) } : {}),
    ...(str(d.fw) ? { fw: str(d.fw) } : {}),
    ...(str(d.node_guid) ? { nodeGuid: str(d.node_guid) } : {}),
  }));
}

export function parseRdmaLinks(text: string): RdmaLink[] {
  return arr(text).map((l) => ({
    ifname: str(l.ifname) ?? '',
    port: num(l.port) ?? 1,
    state: str(l.state) ?? 'UNKNOWN',
    ...(str(l.physical_state) ? { physicalState: str(l.physical_state) } : {}),
    ...(str(l.netdev) ? { netdev: str(l.netdev) } : {}),
  }));
}

export function parseCmIds(text: string): RdmaCmId[] {
  return arr(text).map((c) => {
    const id: RdmaCmId = { state: str(c.state) ?? 'UNKNOWN' };
    if (str(c.ifname)) id.ifname = str(c.ifname);
    if (num(c.port) !== undefined) id.port = num(c.port);
    if (num(c['cm-idn']) !== undefined) id.cmIdn = num(c['cm-idn']);
    if (str(c['qp-type'])) id.qpType = str(c['qp-type']);
    if (str(c.ps)) id.ps = str(c.ps);
    if (num(c.pid) !== undefined) id.pid = num(c.pid);
    if (str(c.comm)) id.comm = str(c.comm);
    if (str(c['src-addr'])) id.srcAddr = str(c['src-addr']);
    if (num(c['src-port']) !== undefined) id.srcPort = num(c['src-port']);
    if (str(c['dst-addr'])) id.dstAddr = str(c['dst-addr']);
    if (num(c['dst-port']) !== undefined) id.dstPort = num(c['dst-port']);
    if (num(c.lqpn) !== undefined) id.lqpn = num(c.lqpn);
    return id;
  });
}

export function parseQps(text: string): RdmaQp[] {
  return arr(text).map((q) => {
    const qp: RdmaQp = { ifname: str(q.ifname) ?? '', lqpn: num(q.lqpn) ?? -1, type: str(q.type) ?? '?', state: str(q.state) ?? 'UNKNOWN' };
    if (num(q.port) !== undefined) qp.port = num(q.port);
    if (num(q.rqpn) !== undefined) qp.rqpn = num(q.rqpn);
    if (num(q.pid) !== undefined) qp.pid = num(q.pid);
    if (str(q.comm)) qp.comm = str(q.comm);
    return qp;
  });
}
