// rdma-failover smoke: lab up (VM) → fabric up → RDMA CM connection → carrier loss → new connection → teardown.
import type { Command } from '@commander-js/extra-typings';
import { smoke } from '../smoke.ts';
import { labDown, labUp } from '../vmlab/vm-lab.ts';
import { readState } from '../vmlab/state.ts';
import { fabricDownJournaled, fabricUpJournaled } from './fabric-commands.ts';
import { DEFAULT_TOPOLOGY, loadOrExit, openLab } from './open-lab.ts';
import { progressPrinter } from './lab-commands.ts';
import { green, red } from './style.ts';
import type { Lab } from '../lab/lab.ts';

export function registerSmokeCommand(program: Command): void {
  program
    .command('smoke')
    .description('bring up the lab and fabric, check an RDMA CM connection survives a real carrier loss, tear down')
    .argument('[topology]', 'topology file', DEFAULT_TOPOLOGY)
    .option('--keep', 'leave the lab and fabric up afterwards')
    .option('--json', 'print the result as JSON')
    .action(async (file, opts) => {
      const loaded = loadOrExit(file);
      const say = progressPrinter();
      const vm = loaded.topology.kind === 'vm';
      const wasUp = vm && readState(loaded.topology.name)?.phase === 'up';
      let lab: Lab | undefined;
      try {
        lab = vm ? await labUp(loaded, { progress: say }) : await openLab(loaded);
        say('fabric', 'bringing up bonds and RDMA links');
        const f = await fabricUpJournaled(lab);
        say('fabric', `up in ${(f.durationMs / 1000).toFixed(1)} s`);
        const r = await smoke(lab, { log: (m) => say('smoke', m) });
        process.exitCode = r.ok ? 0 : 1;
        if (opts.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
        else if (r.ok) {
          process.stdout.write(
            green('smoke check passed') +
              `: ${r.client}/${r.faultedSlave} lost carrier (${r.carrierMethod}); bond failed over to ${r.after.activeSlave} in ${r.failoverMs.toFixed(0)} ms; ` +
              `bond address ${r.before.bondAddress} → ${r.after.bondAddress}; a new RDMA CM connection to ${r.server} worked over ${r.after.activeSlave}\n`,
          );
        } else process.stdout.write(red('smoke check FAILED') + ':\n' + r.problems.map((p) => `  - ${p}`).join('\n') + '\n');
      } finally {
        if (lab && !opts.keep) {
          say('teardown', 'fabric down');
          await fabricDownJournaled(lab).catch((e: Error) => say('teardown', `fabric down: ${e.message}`));
        }
        await lab?.close();
        if (vm && !opts.keep && !wasUp) {
          say('teardown', 'lab down');
          await labDown(loaded.topology.name);
        }
      }
    });
}
