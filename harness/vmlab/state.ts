// The lab's state on disk: everything `lab down` (or the next `lab up`) needs to clean up after a
// killed run. Written before each step that creates something, so a crash never orphans a resource.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GuestKernel } from './kernel.ts';
import { labsDir } from './paths.ts';

export interface NicState {
  /** interface name in the guest (the topology's slave name) */
  name: string;
  mac: string;
  /** host-side tap, inside the lab namespace once plugged */
  tap: string;
  switch: string;
}

export interface GuestState {
  name: string;
  index: number;
  pid?: number;
  sshPort: number;
  qmpSocket: string;
  consoleLog: string;
  configDir: string;
  hostKeyFingerprint: string;
  memoryMiB: number;
  nics: NicState[];
}

export interface LabState {
  version: 1;
  lab: string;
  labId: string;
  phase: 'creating' | 'up';
  topologyFile: string;
  topologySha256: string;
  netns: string;
  dir: string;
  kernel?: GuestKernel;
  initramfs?: string;
  /** the kernel's uncompressed ELF, booted through its PVH entry (absent: the bzImage is booted) */
  bootImage?: string;
  cpu: string;
  clientKeyFile: string;
  createdAt: string;
  upAt?: string;
  guests: GuestState[];
}

export function labDir(lab: string): string {
  return join(labsDir(), lab);
}

export function statePath(lab: string): string {
  return join(labDir(lab), 'state.json');
}

export function readState(lab: string): LabState | undefined {
  const p = statePath(lab);
  if (!existsSync(p)) return undefined;
  return JSON.parse(readFileSync(p, 'utf8')) as LabState;
}

export function writeState(s: LabState): void {
  mkdirSync(s.dir, { recursive: true, mode: 0o700 });
  const p = statePath(s.lab);
  writeFileSync(`${p}.tmp`, JSON.stringify(s, null, 2));
  renameSync(`${p}.tmp`, p);
}
