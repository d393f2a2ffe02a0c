// The topology schema: the single source of truth for what a lab file may say.
// TypeScript types are derived from it (FromSchema), so code and validation cannot drift apart.
// Keys that configure the kernel use the kernel's own sysfs spelling (fail_over_mac, num_grat_arp…).
import { ULPS, budgetProperties, workloadProperties } from '../ulp/registry.ts';
import type { FromSchema } from 'json-schema-to-ts';

const argv = {
  type: 'array',
  minItems: 1,
  items: {
    oneOf: [
      { type: 'string', minLength: 1 },
      {
        type: 'object',
        required: ['env'],
        additionalProperties: false,
        description: 'a secret argument (a password, a token): taken from this environment variable when the command runs, masked in every output',
        properties: { env: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]*$' } },
      },
    ],
    errorMessage: 'must be a string, or { env: NAME } for a secret taken from the environment',
  },
  description: 'a command as an argv array (never a shell string); an element { env: NAME } is a secret from the environment',
} as const;

const ifname = {
  type: 'string',
  pattern: '^[A-Za-z0-9_.:-]{1,15}$',
  errorMessage: { pattern: 'must be a Linux interface name (1–15 characters of A–Z a–z 0–9 _ . : -)' },
} as const;

const nodeName = {
  type: 'string',
  pattern: '^[a-z][a-z0-9-]{0,30}$',
  errorMessage: { pattern: 'must be a node name: lower case letter, then letters, digits or "-" (max 31)' },
} as const;

const ipv4Cidr = {
  type: 'string',
  pattern: '^\\d{1,3}(\\.\\d{1,3}){3}/\\d{1,3}$',
  errorMessage: { pattern: 'must be an IPv4 address with prefix, like 192.168.50.1/24' },
} as const;

const hostKey = {
  type: 'object',
  additionalProperties: false,
  properties: {
    sha256: {
      type: 'string',
      pattern: '^SHA256:[A-Za-z0-9+/]{43}=?$',
      errorMessage: { pattern: 'must be an OpenSSH fingerprint like SHA256:<43 base64 characters>' },
    },
    known_hosts: { type: 'string', minLength: 1, description: 'path of a known_hosts file (hashed entries supported)' },
    insecure_accept_any: {
      type: 'boolean',
      description: 'accept any host key (throwaway labs only; prints a loud warning)',
    },
  },
  minProperties: 1,
  maxProperties: 1,
  errorMessage: {
    minProperties: 'must say how to verify the host key: sha256, known_hosts or insecure_accept_any',
    maxProperties: 'must give exactly one of sha256, known_hosts, insecure_accept_any',
  },
} as const;

const access = {
  type: 'object',
  required: ['type'],
  properties: {
    type: { enum: ['local', 'ssh', 'vm'] },
    host: { type: 'string', minLength: 1 },
    port: { type: 'integer', minimum: 1, maximum: 65535 },
    user: { type: 'string', minLength: 1 },
    identity_file: { type: 'string', minLength: 1 },
    agent: { type: 'boolean', description: 'use $SSH_AUTH_SOCK' },
    host_key: hostKey,
    connect_timeout_ms: { type: 'integer', minimum: 100 },
    keepalive_ms: { type: 'integer', minimum: 0 },
    max_sessions: { type: 'integer', minimum: 1, maximum: 1000, description: "the server's MaxSessions" },
  },
  additionalProperties: false,
  errorMessage: {
    additionalProperties:
      'has a key that is not allowed here (passwords are never accepted: use identity_file or agent)',
  },
  allOf: [
    {
      if: { properties: { type: { const: 'ssh' } } },
      then: { required: ['host', 'host_key'] },
    },
  ],
} as const;

const slave = {
  type: 'object',
  required: ['name', 'link'],
  additionalProperties: false,
  properties: {
    name: ifname,
    link: {
      enum: ['ipoib', 'roce', 'rxe', 'siw'],
      description: 'ipoib: IPoIB child of an HCA port; roce: RoCE NIC; rxe: Ethernet NIC carrying soft RoCE; siw: Ethernet NIC carrying soft iWARP',
    },
    rdma_device: { type: 'string', pattern: '^[A-Za-z0-9_]{1,31}$', description: 'e.g. mlx5_0' },
    rdma_port: { type: 'integer', minimum: 1 },
    switch: { type: 'string', minLength: 1, description: 'VM lab: which switch the NIC is plugged into' },
    carrier: {
      type: 'object',
      description: 'real lab: commands (run on the controller) that cut and restore this link',
      required: ['down', 'up'],
      additionalProperties: false,
      properties: { down: argv, up: argv, node: { type: 'string', description: 'run on this node instead' } },
    },
  },
} as const;

const bond = {
  type: 'object',
  required: ['name', 'address', 'slaves'],
  additionalProperties: false,
  properties: {
    name: ifname,
    mode: { enum: ['active-backup', 'balance-rr', 'balance-xor', 'broadcast', '802.3ad', 'balance-tlb', 'balance-alb'] },
    miimon: { type: 'integer', minimum: 0, maximum: 60000 },
    updelay: { type: 'integer', minimum: 0 },
    downdelay: { type: 'integer', minimum: 0 },
    fail_over_mac: { enum: ['none', 'active', 'follow'] },
    primary: ifname,
    primary_reselect: { enum: ['always', 'better', 'failure'] },
    num_grat_arp: { type: 'integer', minimum: 0, maximum: 255 },
    peer_notify_delay: { type: 'integer', minimum: 0 },
    arp_interval: { type: 'integer', minimum: 0 },
    arp_ip_target: { type: 'array', items: { type: 'string', format: 'ipv4' }, maxItems: 16 },
    arp_validate: { enum: ['none', 'active', 'backup', 'all', 'filter', 'filter_active', 'filter_backup'] },
    mtu: { type: 'integer', minimum: 68, maximum: 65520 },
    address: ipv4Cidr,
    rdma: {
      type: 'object',
      additionalProperties: false,
      properties: {
        type: { enum: ['rxe', 'siw', 'hca'], description: 'rxe / siw: rdma link add (soft RoCE / soft iWARP) over the bond; hca: the HCA devices of the slaves' },
        name: { type: 'string', pattern: '^[A-Za-z0-9_]{1,31}$' },
      },
    },
    slaves: { type: 'array', minItems: 1, maxItems: 8, items: slave },
  },
} as const;

const vmSpec = {
  type: 'object',
  additionalProperties: false,
  properties: {
    kernel: {
      description: 'debian-stable (default), debian-backports, or a kernel image with its modules tree',
      oneOf: [
        { enum: ['debian-stable', 'debian-backports'] },
        {
          type: 'object',
          required: ['image', 'modules'],
          additionalProperties: false,
          properties: { image: { type: 'string' }, modules: { type: 'string' }, name: { type: 'string' } },
        },
      ],
    },
    memory_mib: { type: 'integer', minimum: 256, maximum: 8192 },
    cpu: { type: 'string', minLength: 1 },
    boot_timeout_s: { type: 'integer', minimum: 10, maximum: 1800 },
    ssh_port_base: {
      type: 'integer',
      minimum: 1024,
      maximum: 65000,
      description: 'guest i gets 127.0.0.1:(base+i) for SSH; default: free ports chosen at lab up',
    },
    switches: { type: 'array', items: { type: 'string' }, minItems: 1, maxItems: 8 },
  },
} as const;

const node = {
  type: 'object',
  required: ['name'],
  additionalProperties: false,
  properties: {
    name: nodeName,
    roles: { type: 'array', items: { type: 'string', pattern: '^[a-z][a-z0-9-]*$' }, uniqueItems: true },
    access,
    bonds: { type: 'array', items: bond, maxItems: 4 },
    memory_mib: { type: 'integer', minimum: 256, maximum: 8192 },
  },
} as const;

const budgets = {
  type: 'object',
  additionalProperties: false,
  description: 'time budgets in ms; defaults come from the reconnect table of the test plan',
  properties: {
    failover_ms: { type: 'integer', minimum: 1 },
    no_garp_reconnect_ms: { type: 'integer', minimum: 1, description: 'RF-08: how long a ULP may take to come back when the bond sends no gratuitous ARP (default 120000)' },
    reconnect_ms: {
      type: 'object',
      additionalProperties: false,
      properties: budgetProperties(ULPS),
    },
  },
} as const;

export const topologySchema = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  $id: 'https://rdma-failover.invalid/schema/topology.json',
  title: 'rdma-failover lab topology',
  type: 'object',
  required: ['name', 'kind', 'nodes'],
  additionalProperties: false,
  properties: {
    name: { type: 'string', pattern: '^[a-z][a-z0-9-]{0,30}$' },
    description: { type: 'string' },
    kind: { enum: ['real', 'vm'], description: 'real: machines with HCAs/NICs; vm: the embedded QEMU lab' },
    vm: vmSpec,
    nodes: { type: 'array', minItems: 1, maxItems: 8, items: node },
    workloads: {
      type: 'object',
      additionalProperties: false,
      description: 'options of each ULP workload (harness/ulp/<name>.ts declares them)',
      properties: workloadProperties(ULPS),
    },
    faults: {
      type: 'object',
      additionalProperties: false,
      properties: {
        flap: {
          type: 'object',
          additionalProperties: false,
          properties: { count: { type: 'integer', minimum: 1, maximum: 100 }, period_ms: { type: 'integer', minimum: 100 } },
        },
        both_down: {
          type: 'object',
          additionalProperties: false,
          properties: {
            short_ms: { type: 'integer', minimum: 100 },
            long_ms: { type: 'integer', minimum: 100, description: 'RF-03 long: the outage (at least the give-up time + 15 s)' },
            give_up_s: { type: 'integer', minimum: 1, maximum: 600, description: 'RF-03 long: the give-up time the test sets on its own workload (replacement_timeout, ctrl_loss_tmo, soft mount)' },
          },
        },
        short_flap: {
          type: 'object',
          additionalProperties: false,
          description: 'RF-06: carrier drops shorter than miimon',
          properties: { count: { type: 'integer', minimum: 1, maximum: 100 }, down_ms: { type: 'integer', minimum: 1, maximum: 10000 } },
        },
      },
    },
    budgets,
    health: {
      type: 'object',
      additionalProperties: false,
      properties: {
        allow_kernel_patterns: {
          type: 'array',
          items: {
            type: 'object',
            required: ['pattern', 'reason'],
            additionalProperties: false,
            properties: { pattern: { type: 'string', minLength: 1 }, reason: { type: 'string', minLength: 3 } },
          },
        },
        unresponsive_after_ms: { type: 'integer', minimum: 1000 },
      },
    },
  },
} as const;

export type Topology = FromSchema<typeof topologySchema>;
export type TopologyNode = Topology['nodes'][number];
export type NodeAccess = NonNullable<TopologyNode['access']>;
export type BondSpec = NonNullable<TopologyNode['bonds']>[number];
export type SlaveSpec = BondSpec['slaves'][number];
export type LinkType = SlaveSpec['link'];
