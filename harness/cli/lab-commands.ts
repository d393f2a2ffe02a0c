// rdma-failover lab …: the embedded virtual lab.
import type { Command } from '@commander-js/extra-typings';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { now } from '../clock.ts';
import { clearLabJournals } from '../journal.ts';
import { labDown, labStatus, labUp, kernelChoiceOf } from '../vmlab/vm-lab.ts';
import { prepareKernel, type KernelChoice } from '../vmlab/kernel.ts';
import { ensureSiw, needsSiw } from '../vmlab/siw.ts';
import { buildInitramfs } from '../vmlab/guest.ts';
import { readState } from '../vmlab/state.ts';
import { pvhKernel } from '../vmlab/pvh.ts';
import { DEFAULT_TOPOLOGY, loadOrExit } from './open-lab.ts';
import { quoteArgv } from '../node/argv.ts';
import { dim, green, red } from './style.ts';
import { setGuestLink, writeAsReal } from '../vmlab/as-real.ts';

export function parseKernelOption(v: string | undefined): KernelChoice | undefined {
  if (!v) return undefined;
  if (v === 'debian-stable' || v === 'debian-backports') return v;
  const [image, modules] = v.split(':');
  if (image && modules) return { image, modules };
  throw new Error(`--kernel must be debian-stable, debian-backports or IMAGE:MODULES_DIR (got "${v}")`);
}

export function progressPrinter(): (step: string, detail?: string) => void {
  const t0 = now();
  return (step, detail) => {
    const s = ((now() - t0) / 1000).toFixed(1).padStart(5);
    process.stderr.write(`${dim(`[${s}s]`)} ${step}${detail ? `: ${detail}` : ''}\n`);
  };
}

export function registerLabCommands(program: Command): void {
  const lab = program.command('lab').description('the embedded virtual lab (QEMU guests, rdma_rxe over an active-backup bond)');

  lab
    .command('prepare')
    .description('fetch the guest kernel into the cache and build the initramfs (no guests started)')
    .argument('[topology]', 'VM topology', DEFAULT_TOPOLOGY)
    .option('--kernel <kernel>', 'debian-stable | debian-backports | IMAGE:MODULES_DIR')
    .option('--quiet', 'print only errors')
    .action(async (file, opts) => {
      const loaded = loadOrExit(file);
      const say = opts.quiet ? () => undefined : progressPrinter();
      const k = await prepareKernel(kernelChoiceOf(loaded, parseKernelOption(opts.kernel)), (m) => say('kernel', m));
      if (needsSiw(loaded.topology)) say('kernel', await ensureSiw(k, (m) => say('kernel', m)));
      const initrd = buildInitramfs(k);
      const pvh = await pvhKernel(k.image, (m) => say('kernel', `booting the bzImage (${m})`));
      if (!opts.quiet) process.stdout.write(`kernel ${k.id}\n  image ${k.image}\n  modules ${k.modulesRoot}\n  initramfs ${initrd}\n  boots ${pvh ? `${pvh} (PVH)` : 'the bzImage'}\n`);
    });

  lab
    .command('up')
    .description('boot the guests (in parallel), wire the switches, verify SSH')
    .argument('[topology]', 'VM topology', DEFAULT_TOPOLOGY)
    .option('--kernel <kernel>', 'debian-stable | debian-backports | IMAGE:MODULES_DIR')
    .option('--fresh', 'recreate the lab even if it is up')
    .action(async (file, opts) => {
      const loaded = loadOrExit(file);
      const t0 = now();
      const kernel = parseKernelOption(opts.kernel);
      const l = await labUp(loaded, { progress: progressPrinter(), reuse: !opts.fresh, ...(kernel ? { kernel } : {}) });
      await l.close();
      process.stdout.write(green(`lab ${loaded.topology.name} is up`) + ` (${((now() - t0) / 1000).toFixed(1)} s): ${l.state.guests.map((g) => `${g.name} ssh 127.0.0.1:${g.sshPort}`).join(', ')}\n`);
    });

  lab
    .command('down')
    .description("stop the lab's guests (by PID), remove its namespace, taps and files")
    .argument('[topology]', 'VM topology', DEFAULT_TOPOLOGY)
    .action(async (file) => {
      const loaded = loadOrExit(file);
      if (loaded.topology.kind !== 'vm') {
        process.stderr.write(`${file}: lab down stops a VM lab's guests; ${loaded.topology.name} is a ${loaded.topology.kind} lab (restore it with: rdma-failover fabric down)\n`);
        process.exitCode = 2;
        return;
      }
      const r = await labDown(loaded.topology.name);
      // A VM lab that is not running has no kernel state left to undo: its journals are moot.
      const moot = r.wasUp ? [] : clearLabJournals(loaded.topology.name);
      process.stdout.write(r.wasUp ? `lab ${loaded.topology.name} is down\n` : `lab ${loaded.topology.name} was not up${moot.length ? ` (dropped its moot restore journals: ${moot.join(', ')})` : ''}\n`);
    });

  lab
    .command('status')
    .description('show the lab: guests, PIDs, ports, NICs and switch ports')
    .argument('[topology]', 'VM topology', DEFAULT_TOPOLOGY)
    .option('--json', 'print as JSON')
    .action((file, opts) => {
      const loaded = loadOrExit(file);
      const s = labStatus(loaded.topology.name);
      if (opts.json) {
        process.stdout.write(JSON.stringify(s, null, 2) + '\n');
      } else if (s.phase === 'down') {
        process.stdout.write(`lab ${s.lab}: down\n`);
      } else {
        process.stdout.write(`lab ${s.lab}: ${s.stale ? red('STALE (run lab up or lab down)') : green(s.phase)}, kernel ${s.kernel ?? '?'}, namespace ${s.netns}\n`);
        for (const g of s.guests) {
          process.stdout.write(`  ${g.name}: ${g.running ? green('running') : red('not running')} pid ${g.pid ?? '-'}, ssh 127.0.0.1:${g.sshPort}\n`);
          for (const n of g.nics) process.stdout.write(`    ${n.name} ${n.mac} → switch ${n.switch} (port ${n.tap})\n`);
        }
      }
      process.exitCode = s.phase === 'up' && !s.stale ? 0 : 1;
    });

  lab
    .command('link')
    .description("set a guest data NIC's link (carrier) through QMP: a real lab's \"switch CLI\" for the VM guests")
    .argument('<node>', 'guest name')
    .argument('<iface>', 'data NIC (a bond slave, e.g. eth0)')
    .argument('<state>', 'down | up')
    .option('-t, --topology <file>', 'VM topology', DEFAULT_TOPOLOGY)
    .action(async (node, iface, state, opts) => {
      if (state !== 'down' && state !== 'up') throw new Error(`state must be down or up (got "${state}")`);
      await setGuestLink(loadOrExit(opts.topology), node, iface, state === 'up');
    });

  lab
    .command('as-real')
    .description('write a kind: real topology (plain SSH, known_hosts from ssh-keyscan, carrier commands via `lab link`) for the running guests')
    .argument('[topology]', 'VM topology', DEFAULT_TOPOLOGY)
    .requiredOption('-o, --out <dir>', 'where topology.yaml and known_hosts go')
    .action(async (file, opts) => {
      const out = await writeAsReal(loadOrExit(file), opts.out);
      process.stdout.write(`${out}\n`);
    });

  lab
    .command('ssh')
    .description('open a shell on a guest (or run a command), with the pinned host key')
    .argument('<node>', 'guest name')
    .argument('[command...]', 'command to run')
    .option('-t, --topology <file>', 'VM topology', DEFAULT_TOPOLOGY)
    .action((node, command, opts) => {
      const loaded = loadOrExit(opts.topology);
      const st = readState(loaded.topology.name);
      const g = st?.guests.find((x) => x.name === node);
      if (!st || !g) throw new Error(`no guest ${node} in a running lab ${loaded.topology.name}`);
      const known = join(st.dir, 'known_hosts');
      writeFileSync(known, st.guests.map((x) => `[127.0.0.1]:${x.sshPort} ${readFileSync(join(x.configDir, 'ssh_host_ed25519_key.pub'), 'utf8').split(' ').slice(0, 2).join(' ')}`).join('\n') + '\n');
      const r = spawnSync(
        'ssh',
        ['-i', st.clientKeyFile, '-p', String(g.sshPort), '-o', `UserKnownHostsFile=${known}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'LogLevel=ERROR', 'root@127.0.0.1', ...(command.length ? ['--', quoteArgv(command)] : [])],
        { stdio: 'inherit' },
      );
      process.exitCode = r.status ?? 1;
    });
}
