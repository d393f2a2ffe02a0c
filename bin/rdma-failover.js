#!/usr/bin/env node
// The rdma-failover command. Runs the TypeScript sources directly (tsx), so there is no build
// step that could go stale.
import { register } from 'tsx/esm/api';

register();
await import('../harness/cli/main.ts');
