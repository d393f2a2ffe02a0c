// rdma-failover fabric up|down: bond + RDMA link from the topology, on any lab.
import type { Command } from '@commander-js/extra-typings';
import { fabricUp, restoreFabric } from '../fabric/fabric.ts';
import { restoreLab } from '../fixture/restore.ts';
import { journalDir, writeJournal } from '../journal.ts';
import type { Lab } from '../lab/lab.ts';
import { DEFAULT_TOPOLOGY, loadOrExit, openLab } from './open-lab.ts';
import { green, yellow } from './style.ts';

/** Brings the fabric up with its restore journal; replays a leftover journal first. */
export async function fabricUpJournaled(lab: Lab): Promise<Awaited<ReturnType<typeof fabricUp>>> {
  const name = lab.loaded.topology.name;
  const old = await restoreFabric(lab);
  for (const p of old.problems) process.stderr.write(`${yellow('restore:')} ${p}\n`);
  if (old.problems.length) throw new Error(`the previous fabric could not be restored (its journal is kept in ${journalDir()}): ${old.problems.join('; ')}`);
  return fabricUp(lab, (r) => writeJournal('fabric', name, r));
}

/** Restores the lab: whatever a killed run left (processes, faults, trace instances), then the fabric. */
export async function fabricDownJournaled(lab: Lab): Promise<{ restored: boolean; problems: string[]; done: string[] }> {
  const r = await restoreLab(lab);
  return { restored: r.fabric || r.done.length > 0, problems: r.problems, done: r.done };
}

export function registerFabricCommands(program: Command): void {
  const fabric = program.command('fabric').description('the bonded RDMA fabric on every node (same code for VM and real labs)');
  fabric
    .command('up')
    .description('load modules, build the active-backup bond through sysfs, address it, attach the RDMA link, check peers')
    .argument('[topology]', 'topology file', DEFAULT_TOPOLOGY)
    .action(async (file) => {
      const lab = await openLab(loadOrExit(file));
      try {
        const r = await fabricUpJournaled(lab);
        for (const [node, links] of Object.entries(r.links)) {
          process.stdout.write(`${node}: ${links.map((l) => `${l.ifname}/${l.port} ${l.state} on ${l.netdev ?? '?'}`).join(', ')}\n`);
        }
        process.stdout.write(green(`fabric up in ${(r.durationMs / 1000).toFixed(1)} s; every node reaches its peers over the bond`) + '\n');
      } finally {
        await lab.close();
      }
    });
  fabric
    .command('down')
    .description('restore the lab from the restore journals: what a killed run left (processes, faults, trace instances), then the fabric')
    .argument('[topology]', 'topology file', DEFAULT_TOPOLOGY)
    .action(async (file) => {
      const lab = await openLab(loadOrExit(file));
      try {
        const r = await fabricDownJournaled(lab);
        if (!r.restored) process.stdout.write('nothing to restore (no restore journal)\n');
        for (const d of r.done) process.stdout.write(`${d}\n`);
        for (const p of r.problems) process.stderr.write(`${yellow('problem:')} ${p}\n`);
        if (r.restored && !r.problems.length) process.stdout.write('fabric down: restored\n');
        process.exitCode = r.problems.length ? 1 : 0;
      } finally {
        await lab.close();
      }
    });
}
