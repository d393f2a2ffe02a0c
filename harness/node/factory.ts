// Topology access → Node. Paths are relative to the topology file; "~" is the user's home.
import { homedir } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { NodeAccess } from '../topology/schema.ts';
import { insecurePolicy, knownHostsPolicy, pinnedPolicy, type HostKeyPolicy } from './hostkey.ts';
import { LocalNode } from './local.ts';
import type { Node } from './node.ts';
import { SshNode } from './ssh.ts';

export function expandPath(p: string, topologyFile: string): string {
  if (p === '~' || p.startsWith('~/')) return resolve(homedir(), p.slice(2));
  return isAbsolute(p) ? p : resolve(dirname(topologyFile), p);
}

export function hostKeyPolicyFor(access: NodeAccess, topologyFile: string): HostKeyPolicy {
  const hk = access.host_key;
  const host = access.host ?? 'localhost';
  const port = access.port ?? 22;
  if (hk?.sha256) return pinnedPolicy(hk.sha256);
  if (hk?.known_hosts) return knownHostsPolicy(expandPath(hk.known_hosts, topologyFile), host, port);
  if (hk?.insecure_accept_any) return insecurePolicy();
  // No policy given: the user's known_hosts, like OpenSSH's StrictHostKeyChecking=yes.
  return knownHostsPolicy(resolve(homedir(), '.ssh/known_hosts'), host, port);
}

export function nodeFromAccess(name: string, access: NodeAccess, topologyFile: string): Node {
  if (access.type === 'local') return new LocalNode(name);
  if (access.type !== 'ssh' || !access.host) throw new Error(`node ${name}: access type ${access.type} needs a lab to resolve it`);
  return new SshNode({
    name,
    host: access.host,
    port: access.port ?? 22,
    user: access.user ?? 'root',
    ...(access.identity_file ? { identityFile: expandPath(access.identity_file, topologyFile) } : {}),
    ...(access.agent && process.env.SSH_AUTH_SOCK ? { agent: process.env.SSH_AUTH_SOCK } : {}),
    hostKey: hostKeyPolicyFor(access, topologyFile),
    ...(access.connect_timeout_ms ? { connectTimeoutMs: access.connect_timeout_ms } : {}),
    ...(access.keepalive_ms !== undefined ? { keepaliveMs: access.keepalive_ms } : {}),
    ...(access.max_sessions ? { maxSessions: access.max_sessions } : {}),
  });
}
