// rdma-failover matrix --kernels A,B --transports rxe,siw [suites]: the same certification set on
// each kernel × soft transport (sequentially: 2 cores), one side-by-side report, JUnit per cell.
import type { Command } from '@commander-js/extra-typings';
import { mkdirSync, readdirSync, existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { buildMatrix, renderMatrixText, writeMatrix } from '../report/matrix.ts';
import { newRunId } from '../report/build.ts';
import { readReport, reportsDir } from '../report/write.ts';
import { DEFAULT_TOPOLOGY, loadOrExit } from './open-lab.ts';
import { parseKernelOption } from './lab-commands.ts';
import { runSuites } from './run-command.ts';
import { combinedExit } from '../run/labs.ts';
import { parseTransports, topologyYaml, transportsOf, withTransport } from '../topology/transport.ts';

export function registerMatrixCommand(program: Command): void {
  program
    .command('matrix')
    .description('run the same suites on several guest kernels and/or soft RDMA transports, with one side-by-side report')
    .argument('[suites...]', 'suites (default: all)')
    .option('--kernels <list>', "comma-separated: debian-stable, debian-backports, IMAGE:MODULES_DIR (default: the topology's)")
    .option('--transports <list>', "comma-separated soft transports of the VM lab's bonds: rxe, siw (default: the topology's)")
    .option('-t, --topology <file>', 'VM topology', DEFAULT_TOPOLOGY)
    .option('--quick', 'only the quick subset (one failover per ULP)')
    .option('--grep <pattern>', 'only tests whose title matches')
    .option('--reports <dir>', 'where the matrix folder goes (default: reports/)')
    .option('--no-pdf', 'skip the PDF')
    .action(async (suites, opts) => {
      const loaded = loadOrExit(opts.topology);
      if (loaded.topology.kind !== 'vm') throw new Error('a matrix boots guest kernels and soft transports: it needs a kind: vm topology');
      const own = loaded.topology.vm?.kernel;
      const kernels = opts.kernels ? opts.kernels.split(',').map((k) => k.trim()).filter(Boolean) : [typeof own === 'string' ? own : own ? `${own.image}:${own.modules}` : 'debian-stable'];
      for (const k of kernels) parseKernelOption(k);
      const transports = opts.transports ? parseTransports(opts.transports) : transportsOf(loaded.topology);
      const id = `matrix-${newRunId()}`;
      const dir = join(opts.reports ? resolve(opts.reports) : reportsDir(), id);
      mkdirSync(dir, { recursive: true });
      // One topology file per transport (the lab renamed with it: its own state and journals).
      const topologyFor = new Map<string, string>();
      for (const tr of transports) {
        if (transportsOf(loaded.topology).join() === tr) topologyFor.set(tr, opts.topology);
        else {
          const f = join(dir, `topology-${tr}.yaml`);
          writeFileSync(f, topologyYaml(withTransport(loaded.topology, tr, loaded.file), `${loaded.file} with its bonds' soft RDMA switched to ${tr} (rdma-failover matrix ${id})`));
          topologyFor.set(tr, f);
        }
      }
      const cells = kernels.flatMap((k) => transports.map((tr) => ({ k, tr })));
      const runs: { label: string; dir: string; code: number }[] = [];
      for (const { k, tr } of cells) {
        const label = transports.length > 1 ? `${k} × ${tr}` : k;
        const sub = join(dir, (transports.length > 1 ? `${k}_${tr}` : k).replace(/[^A-Za-z0-9._-]+/g, '_'));
        process.stderr.write(`\n=== kernel ${k}, transport ${tr} ===\n`);
        const code = await runSuites({
          topology: topologyFor.get(tr)!,
          suites,
          kernel: k,
          reportsDir: sub,
          ...(opts.quick ? { quick: true } : {}),
          ...(opts.grep ? { grep: opts.grep } : {}),
          // each cell gets its own lab, taken down after its run
          env: { RDMA_FAILOVER_KEEP_LAB: '0' },
        });
        runs.push({ label, dir: sub, code });
      }
      const reports = runs.flatMap((r) => {
        const runDir = existsSync(r.dir) ? readdirSync(r.dir).filter((d) => d !== 'latest' && existsSync(join(r.dir, d, 'report.json'))).sort().pop() : undefined;
        return runDir ? [{ label: r.label, dir: join(r.dir, runDir), report: readReport(join(r.dir, runDir)) }] : [];
      });
      if (reports.length !== cells.length) process.stderr.write(`warning: ${cells.length - reports.length} matrix cell(s) produced no report\n`);
      const m = buildMatrix(id, reports);
      const w = await writeMatrix(m, dir, opts.pdf);
      process.stdout.write(`${renderMatrixText(m)}\n\nmatrix: ${w.json}, ${w.html}${w.pdf ? `, ${w.pdf}` : ''}; JUnit per cell in ${dir}/<cell>/<run>/junit.xml\n`);
      // known failures only in every cell: 3, as for one run (a nightly job goes red only on news)
      process.exitCode = reports.length === cells.length ? combinedExit(runs.map((r) => r.code)) : 1;
    });
}
