// What the run knows about itself, for the reporter (filled by the lab session when it opens).
import type { LinkType } from '../topology/schema.ts';
import type { NodeEnvironment } from './schema.ts';

export interface RunContext {
  topology?: { file: string; name: string; kind: 'real' | 'vm'; sha256: string; transports?: LinkType[] };
  kernel?: string;
  environment: NodeEnvironment[];
  /** strings that must never appear in a report (key paths from the topology) */
  secrets: string[];
  /** a real lab lost a node: the run stopped there, with what is left to restore */
  stopped?: { reason: string; journals: string[] };
  /** what the run could not restore on the lab at its end (it stays journaled) */
  notRestored?: { problems: string[]; journals: string[] };
  /** the run was stopped by a signal: set by the reporter, which writes a partial report */
  interrupted?: { why: string; at: string };
  /** installed by the reporter: writes the report of an interrupted run */
  onInterrupt?: (why: string) => Promise<void>;
}

export const runContext: RunContext = { environment: [], secrets: [] };
