// The mocha reporter: spec-style lines (and a live step line on a TTY), then reports/<run-id>/
// (report.json, junit.xml, report.html, report.pdf), then the closing line CI understands.
import Mocha from 'mocha';
import { relative } from 'node:path';
import { recordOf } from '../fixture/test.ts';
import { buildReport, newRunId, redact, type CollectedTest } from './build.ts';
import { progress, type StepProgress } from './progress.ts';
import { runContext } from './registry.ts';
import { writeReports } from './write.ts';
import { stopRequested } from '../fixture/stop.ts';

const { Spec } = Mocha.reporters;
const { EVENT_RUN_BEGIN, EVENT_TEST_PASS, EVENT_TEST_FAIL, EVENT_TEST_PENDING, EVENT_TEST_BEGIN, EVENT_TEST_END } = Mocha.Runner.constants;

function suiteTitle(t: Mocha.Runnable): string {
  const out: string[] = [];
  for (let p = t.parent; p; p = p.parent) if (p.title) out.unshift(p.title);
  return out.join(' › ') || '(root)';
}

export default class HarnessReporter extends Spec {
  private readonly collected: CollectedTest[] = [];
  private startedAt = new Date();
  private readonly tty = !!process.stderr.isTTY;
  private live = '';

  constructor(runner: Mocha.Runner, options?: Mocha.MochaOptions) {
    super(runner, options);
    runner.once(EVENT_RUN_BEGIN, () => (this.startedAt = new Date()));
    const add = (t: Mocha.Runnable, given: CollectedTest['state'], err?: Error) => {
      if (this.collected.some((c) => c.fullTitle === t.fullTitle() && c.state === 'interrupted')) return;
      // A test that fails once the run is stopping was stopped, whatever its error says.
      const state = given === 'failed' && stopRequested() ? 'interrupted' : given;
      const record = recordOf(t);
      this.collected.push({
        title: t.title,
        fullTitle: t.fullTitle(),
        suite: suiteTitle(t),
        ...(t.file ? { file: relative(process.cwd(), t.file) } : {}),
        state,
        durationMs: t.duration ?? 0,
        ...(err ? { error: { message: err.message, ...(err.stack ? { stack: err.stack } : {}) } } : {}),
        ...(record ? { record } : {}),
      });
    };
    runner.on(EVENT_TEST_PASS, (t) => add(t, 'passed'));
    runner.on(EVENT_TEST_FAIL, (t, err: Error) => add(t, 'failed', err)); // hooks too
    runner.on(EVENT_TEST_PENDING, (t) => add(t, 'pending'));
    // A live "which test, which step, elapsed" line on a TTY; nothing extra in CI logs.
    let testStart = 0;
    let current: Mocha.Runnable | undefined;
    runner.on(EVENT_TEST_BEGIN, (t) => {
      testStart = Date.now();
      current = t;
    });
    runner.on(EVENT_TEST_END, () => {
      current = undefined;
      this.clearLive();
    });
    // Ctrl-C/SIGTERM: the report of what ran, the running test marked interrupted.
    runContext.onInterrupt = async (why) => {
      this.clearLive();
      if (current) {
        current.duration = Date.now() - testStart;
        add(current, 'interrupted', new Error(`interrupted (${why}) during this test`));
      }
      await this.write(`\nRUN INTERRUPTED (${why})`);
    };
    progress.on('step', (p: StepProgress) => {
      if (!this.tty) return;
      const s = ((Date.now() - testStart) / 1000).toFixed(1).padStart(6);
      this.live = `  ⏱ ${s}s  ${p.step}`.slice(0, (process.stderr.columns ?? 100) - 1);
      process.stderr.write(`\r\x1b[2K${this.live}`);
    });
  }

  private clearLive(): void {
    if (this.tty && this.live) process.stderr.write('\r\x1b[2K');
    this.live = '';
  }

  /** Mocha waits for this before exiting: the reports are written here. */
  override done(failures: number, fn?: (failures: number) => void): void {
    this.clearLive();
    // While the run stops, the stop handler owns the end: mocha must not exit before the lab is restored.
    if (stopRequested()) {
      void this.write(`\nRUN INTERRUPTED (${runContext.interrupted?.why ?? 'stopped'})`);
      return;
    }
    // mocha exits with the failure count: a lab left changed counts as one.
    void this.write('').then(() => fn?.(failures + (runContext.notRestored ? 1 : 0)));
  }

  private written: Promise<void> | undefined;

  /** Writes reports/<run-id>/ and prints the closing lines, once (also for an interrupted run). */
  private write(banner: string): Promise<void> {
    this.written ??= this.writeOnce(banner);
    return this.written;
  }

  private async writeOnce(banner: string): Promise<void> {
    const finish = (extra: string) => {
      if (runContext.notRestored) {
        extra += `\nLAB NOT FULLY RESTORED:\n  ${runContext.notRestored.problems.join('\n  ')}\nrestore journals:\n  ${runContext.notRestored.journals.join('\n  ')}\n`;
      }
      if (runContext.stopped) {
        extra += `\nRUN STOPPED: ${runContext.stopped.reason.split('\n')[0]}\n${runContext.stopped.journals.length ? `restore journals:\n  ${runContext.stopped.journals.join('\n  ')}\n` : ''}`;
      }
      const passed = this.collected.filter((c) => c.state === 'passed').length;
      const failed = this.collected.filter((c) => c.state === 'failed').length;
      const skipped = this.collected.filter((c) => c.state === 'pending').length;
      const xfail = this.collected.filter((c) => c.state === 'passed' && c.record?.expectedFailure).length;
      const interrupted = this.collected.filter((c) => c.state === 'interrupted').length;
      process.stdout.write(`${banner ? `${banner}\n` : ''}${extra}${xfail ? `(${xfail} of the passed tests are expected failures: the verdict FAIL was the expected one)\n` : ''}\n${passed} passed, ${failed + interrupted} failed, ${skipped} skipped\n`);
    };
    if (process.env.RDMA_FAILOVER_REPORTS === 'off') return finish('');
    const report = redact(buildReport(this.collected, runContext, { id: newRunId(this.startedAt), startedAt: this.startedAt, finishedAt: new Date(), command: process.argv.slice(1).join(' ') }), runContext.secrets);
    // No PDF for an interrupted run: chromium would outlast the stop's bound.
    await writeReports(report, { pdf: process.env.RDMA_FAILOVER_PDF !== '0' && !runContext.interrupted })
      .then((w) => finish(`\nreports: ${relative(process.cwd(), w.dir)}/ (report.json, junit.xml, report.html${w.pdf ? ', report.pdf' : ''})${w.pdfError ? `\nPDF not written: ${w.pdfError}` : ''}\n`))
      .catch((e: Error) => {
        process.stdout.write(`\nREPORT ERROR: ${e.message}\n`);
        finish('');
        process.exitCode = 1;
      });
  }
}
