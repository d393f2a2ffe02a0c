// SRP via the RDMA CM: ib_srpt target, ib_srp initiator (the known gap: ADDR_CHANGE unhandled).
import { defineUlp } from './ulp.ts';

export const srp = defineUlp({
  name: 'srp',
  title: 'SRP',
  planId: 'UL-SRP-01',
  reconnectBudgetMs: 60_000,
  workloadSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      target: { type: 'string' },
      initiator: { type: 'string' },
      size_mib: { type: 'integer', minimum: 1 },
    },
  },
  nodeFields: ['target', 'initiator'],
  kmsgClasses: [['srp', /\bib_srpt?\b|\bsrp\b/i]],
  modules: [
    { name: 'ib_srp', neededBy: 'initiator' },
    { name: 'ib_srpt', neededBy: 'target' },
  ],
  tools: [{ name: 'fio', pkg: 'fio', neededBy: 'initiator (verified I/O)' }],
  stackPattern: /srp|scsi/,
  // Read in 6.12's source; measured on the VM lab (siw): the target logs nothing and holds the
  // connection as [::ffff:192.168.50.2]:port, the initiator "REJ reason 0xffffff98" (-ECONNRESET:
  // iWARP's MPA reject, cma.c cma_iw_handler); the same login to the target's IPv6 link-local
  // address reaches ib_srpt ("Received SRP_LOGIN_REQ").
  unsupported: [{ on: ['siw'], why: 'ib_srpt listens on the IPv6 wildcard only (srpt_rdma_cm_port_store), not AF-only; siw accepts an IPv4 login on that TCP socket, so the connect request carries the v4-mapped address ::ffff:a.b.c.d (siw_cm_upcall, getname_local), which rdma_translate_ip() cannot find on any netdev (ipv6_chk_addr) — iw_conn_req_handler() fails and the iWARP CM rejects every login before ib_srpt sees it; ib_srp then cannot even read the reject (it decodes SRP_LOGIN_REJ only from an IB CM consumer-defined REJ)' }],
} as const);
