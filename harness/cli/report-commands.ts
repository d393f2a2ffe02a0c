// rdma-failover report | compare
import type { Command } from '@commander-js/extra-typings';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compareRuns, renderComparison } from '../report/compare.ts';
import { reportHtml } from '../report/html.ts';
import { junitXml } from '../report/junit.ts';
import { reportSchema } from '../report/schema.ts';
import { htmlToPdf, readReport, writeReports } from '../report/write.ts';
import { mergeReports } from '../report/merge.ts';
import { kcidbErrors, toKcidb } from '../report/kcidb.ts';
import { renderVerdicts, verdictsExitCode, verdictTable } from '../report/verdicts.ts';
import { knownIssues } from '../known/known-issues.ts';

export function registerReportCommands(program: Command): void {
  program
    .command('report')
    .description('regenerate report.html, junit.xml and report.pdf from a run\'s report.json (validated first)')
    .argument('[run-dir]', 'reports/<run-id> (default: reports/latest)', 'reports/latest')
    .option('--no-pdf', 'skip the PDF')
    .option('--schema', 'print the report JSON Schema and exit')
    .action(async (dir, opts) => {
      if (opts.schema) {
        process.stdout.write(JSON.stringify(reportSchema, null, 2) + '\n');
        return;
      }
      const r = readReport(dir);
      const html = reportHtml(r);
      writeFileSync(join(dir, 'report.html'), html);
      writeFileSync(join(dir, 'junit.xml'), junitXml(r));
      if (opts.pdf) await htmlToPdf(html, join(dir, 'report.pdf'));
      process.stdout.write(`${dir}: report.html, junit.xml${opts.pdf ? ', report.pdf' : ''} written from report.json (${r.summary.total} tests)\n`);
    });
  const report = program.commands.find((c) => c.name() === 'report')!;
  report
    .command('merge')
    .description('combine shard runs (and matrix cells) into one report: every test once, with its run, shard, lab and kernel')
    .argument('<runs...>', 'run dirs or report.json files')
    .requiredOption('-o, --out <dir>', 'where the merged report.json, junit.xml, report.html and report.pdf go')
    .option('--force', 'merge runs of different harness versions or topologies')
    .option('--no-pdf', 'skip the PDF')
    .action(async (runs, opts) => {
      const merged = mergeReports(runs.map((r) => readReport(r)), { ...(opts.force ? { force: true } : {}), command: `rdma-failover report merge ${runs.join(' ')} -o ${opts.out}` });
      const w = await writeReports(merged, { dir: opts.out, pdf: opts.pdf });
      process.stdout.write(`${runs.length} runs → ${w.dir}: ${merged.summary.total} tests (${merged.summary.passed} passed, ${merged.summary.failed} failed, ${merged.summary.knownFailures} known, ${merged.summary.skipped} skipped)\n`);
    });
  report
    .command('export')
    .description("write a run in another format: --kcidb for KernelCI's KCIDB (I/O schema v5), ready for kcidb-submit")
    .argument('<run-dir>', 'reports/<run-id> or its report.json')
    .requiredOption('--kcidb', 'KCIDB I/O schema v5')
    .requiredOption('--origin <name>', 'your CI system\'s KCIDB origin ([a-z0-9_]+): every id starts with it')
    .option('-o, --out <file>', 'where the JSON goes (default: stdout)')
    .action((dir, opts) => {
      const data = toKcidb(readReport(dir), opts.origin);
      const errors = kcidbErrors(data);
      if (errors.length) throw new Error(`the export does not validate against KCIDB v5:\n  ${errors.join('\n  ')}`);
      const text = JSON.stringify(data, null, 2) + '\n';
      if (opts.out) {
        writeFileSync(opts.out, text);
        process.stdout.write(`${opts.out}: KCIDB v5 — ${data.checkouts.length} checkout(s), ${data.builds.length} build(s), ${data.tests.length} test(s); submit with: kcidb-submit -p PROJECT -t TOPIC < ${opts.out}\n`);
      } else process.stdout.write(text);
    });
  program
    .command('verdicts')
    .description('does each verdict reproduce? every test across runs of the same certification; exit 0: all the same, 3: only intermittent known issues differ, 1: a verdict changed')
    .argument('<runs...>', 'run dirs or report.json files, oldest first')
    .option('--json', 'print as JSON')
    .action((runs, opts) => {
      // intermittent: from the known-issues files this run would use (shipped + RDMA_FAILOVER_KNOWN_ISSUES)
      const t = verdictTable(runs.map((r) => readReport(r)), new Set(knownIssues().filter((k) => k.intermittent).map((k) => k.id)));
      process.stdout.write(opts.json ? JSON.stringify(t, null, 2) + '\n' : renderVerdicts(t) + '\n');
      process.exitCode = verdictsExitCode(t);
    });
  program
    .command('compare')
    .description('outage-time changes between two runs (regressions in ms and %)')
    .argument('<a>', 'baseline run dir or report.json')
    .argument('<b>', 'new run dir or report.json')
    .option('--json', 'print as JSON')
    .option('--threshold-ms <ms>', 'a regression is worse by more than this', '20')
    .option('--threshold-pct <pct>', '… and by more than this percentage', '10')
    .action((a, b, opts) => {
      const ra = readReport(a);
      const rb = readReport(b);
      const c = compareRuns(ra, rb, { ms: Number(opts.thresholdMs), pct: Number(opts.thresholdPct) });
      process.stdout.write(opts.json ? JSON.stringify(c, null, 2) + '\n' : renderComparison(c, ra, rb) + '\n');
      process.exitCode = c.changes.some((x) => x.regression) ? 1 : 0;
    });
}
