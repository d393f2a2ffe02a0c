// rdma-failover: the command line.
import { Command } from '@commander-js/extra-typings';
import { checkTopologyText } from '../topology/load.ts';
import { formatIssue, TopologyError } from '../topology/issues.ts';
import { readFileSync } from 'node:fs';
import { runDoctor } from '../doctor/doctor.ts';
import { renderDoctor } from '../doctor/render.ts';
import { DEFAULT_TOPOLOGY, loadOrExit, openLab } from './open-lab.ts';
import { red } from './style.ts';
import { registerLabCommands } from './lab-commands.ts';
import { registerFabricCommands } from './fabric-commands.ts';
import { registerSmokeCommand } from './smoke-command.ts';
import { registerReportCommands } from './report-commands.ts';
import { registerRunCommand } from './run-command.ts';
import { registerMatrixCommand } from './matrix-command.ts';
import { maskConsole } from '../secrets.ts';

maskConsole();

const program = new Command()
  .name('rdma-failover')
  .description('Prove that RDMA storage and messaging survive a link failure on an active-backup bond')
  .showHelpAfterError();

program
  .command('validate')
  .description('check topology files: schema, cross-field rules, domain warnings')
  .argument('<files...>', 'topology YAML files')
  .option('--json', 'print findings as JSON')
  .option('--strict', 'treat warnings as errors')
  .action((files, opts) => {
    let errors = 0;
    let warnings = 0;
    const all = [];
    for (const f of files) {
      let text: string;
      try {
        text = readFileSync(f, 'utf8');
      } catch (e) {
        all.push({ severity: 'error' as const, file: f, line: 1, col: 1, path: '', message: `cannot read: ${(e as Error).message}` });
        errors++;
        continue;
      }
      const { issues } = checkTopologyText(text, f);
      all.push(...issues);
      errors += issues.filter((i) => i.severity === 'error').length;
      warnings += issues.filter((i) => i.severity === 'warning').length;
      if (!opts.json && issues.length === 0) process.stdout.write(`${f}: ok\n`);
    }
    if (opts.json) process.stdout.write(JSON.stringify({ errors, warnings, issues: all }, null, 2) + '\n');
    else for (const i of all) process.stdout.write(`${formatIssue(i)}\n`);
    process.exitCode = errors > 0 || (opts.strict && warnings > 0) ? 1 : 0;
  });

program
  .command('doctor')
  .description('reach every node and report what the suites need and what is missing')
  .argument('[topology]', 'topology file', DEFAULT_TOPOLOGY)
  .option('-t, --topology <file>', 'topology file (same as the argument, as in `run -t`)')
  .option('--json', 'print the report as JSON')
  .action(async (file, opts) => {
    const lab = await openLab(loadOrExit(opts.topology ?? file));
    try {
      const report = await runDoctor(lab);
      process.stdout.write(opts.json ? JSON.stringify(report, null, 2) + '\n' : renderDoctor(report) + '\n');
      process.exitCode = report.ok ? 0 : 1;
    } finally {
      await lab.close();
    }
  });

registerLabCommands(program);
registerFabricCommands(program);
registerSmokeCommand(program);
registerReportCommands(program);
registerRunCommand(program);
registerMatrixCommand(program);

// Exit when the command is done: a node connection left open by a failure must not keep us alive.
program
  .parseAsync(process.argv)
  .catch((e: unknown) => {
    if (e instanceof TopologyError) process.stderr.write(`${e.message}\n`);
    else process.stderr.write(`${red('error:')} ${(e as Error).message}\n`);
    process.exitCode = 2;
  })
  .finally(() => process.exit());
