// rdma-failover matrix --kernels A,B [suites]: the same certification set on each kernel
// (sequentially: 2 cores), one side-by-side report, JUnit per kernel.
import type { Command } from '@commander-js/extra-typings';
import { mkdirSync, readdirSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { buildMatrix, renderMatrixText, writeMatrix } from '../report/matrix.ts';
import { newRunId } from '../report/build.ts';
import { readReport, reportsDir } from '../report/write.ts';
import { DEFAULT_TOPOLOGY, loadOrExit } from './open-lab.ts';
import { parseKernelOption } from './lab-commands.ts';
import { runSuites } from './run-command.ts';

export function registerMatrixCommand(program: Command): void {
  program
    .command('matrix')
    .description('run the same suites on several guest kernels and write one side-by-side report')
    .argument('[suites...]', 'suites (default: all)')
    .requiredOption('--kernels <list>', 'comma-separated: debian-stable, debian-backports, IMAGE:MODULES_DIR')
    .option('-t, --topology <file>', 'VM topology', DEFAULT_TOPOLOGY)
    .option('--quick', 'only the quick subset (one failover per ULP)')
    .option('--grep <pattern>', 'only tests whose title matches')
    .option('--reports <dir>', 'where the matrix folder goes (default: reports/)')
    .option('--no-pdf', 'skip the PDF')
    .action(async (suites, opts) => {
      const loaded = loadOrExit(opts.topology);
      if (loaded.topology.kind !== 'vm') throw new Error('a kernel matrix boots guest kernels: it needs a kind: vm topology');
      const kernels = opts.kernels.split(',').map((k) => k.trim()).filter(Boolean);
      for (const k of kernels) parseKernelOption(k);
      const id = `matrix-${newRunId()}`;
      const dir = join(opts.reports ? resolve(opts.reports) : reportsDir(), id);
      mkdirSync(dir, { recursive: true });
      const runs: { label: string; dir: string; code: number }[] = [];
      for (const k of kernels) {
        const sub = join(dir, k.replace(/[^A-Za-z0-9._-]+/g, '_'));
        process.stderr.write(`\n=== kernel ${k} ===\n`);
        const code = await runSuites({
          topology: opts.topology,
          suites,
          kernel: k,
          reportsDir: sub,
          ...(opts.quick ? { quick: true } : {}),
          ...(opts.grep ? { grep: opts.grep } : {}),
          // each kernel gets its own lab, taken down after its run
          env: { RDMA_FAILOVER_KEEP_LAB: '0' },
        });
        runs.push({ label: k, dir: sub, code });
      }
      const reports = runs.flatMap((r) => {
        const runDir = existsSync(r.dir) ? readdirSync(r.dir).filter((d) => d !== 'latest' && existsSync(join(r.dir, d, 'report.json'))).sort().pop() : undefined;
        return runDir ? [{ label: r.label, dir: join(r.dir, runDir), report: readReport(join(r.dir, runDir)) }] : [];
      });
      if (reports.length !== kernels.length) process.stderr.write(`warning: ${kernels.length - reports.length} kernel run(s) produced no report\n`);
      const m = buildMatrix(id, reports);
      const w = await writeMatrix(m, dir, opts.pdf);
      process.stdout.write(`${renderMatrixText(m)}\n\nmatrix: ${w.json}, ${w.html}${w.pdf ? `, ${w.pdf}` : ''}; JUnit per kernel in ${dir}/<kernel>/<run>/junit.xml\n`);
      process.exitCode = runs.every((r) => r.code === 0) && reports.length === kernels.length ? 0 : 1;
    });
}
