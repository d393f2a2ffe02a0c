// The mocha reporter: one line per test that says what really happened (and a live step line on a
// TTY), then reports/<run-id>/ (report.json, junit.xml, report.html, report.pdf), then the closing
// line CI understands. The console never lies: a known failure, a skip, an interruption and a test
// retried after a lab-infrastructure fault each look different from a pass.
//
// Exit status of `rdma-failover run` (RDMA_FAILOVER_RUN=1): 0 every test passed (skips allowed);
// 3 the only failures are known ones; 1 a new failure, an unstable repeated test, or a lab left
// changed; 130 interrupted. Under plain mocha (the harness's own tests) it is mocha's failure count.
import Mocha from 'mocha';
import { relative } from 'node:path';
import { recordOf, type TestRecord } from '../fixture/test.ts';
import { stopRequested } from '../fixture/stop.ts';
import { bold, dim, green, red, yellow } from '../cli/style.ts';
import { buildReport, newRunId, redact, REPEAT, repeatStats, type CollectedTest } from './build.ts';
import { progress, type StepProgress } from './progress.ts';
import { runContext } from './registry.ts';
import { writeReports } from './write.ts';
import { now } from '../clock.ts';

const { Base } = Mocha.reporters;
const { EVENT_RUN_BEGIN, EVENT_SUITE_BEGIN, EVENT_TEST_PASS, EVENT_TEST_FAIL, EVENT_TEST_PENDING, EVENT_TEST_BEGIN, EVENT_TEST_END } = Mocha.Runner.constants;

/** `run`'s exit status when the only failures are known ones. */
export const EXIT_KNOWN_ONLY = 3;

function suiteTitle(t: Mocha.Runnable): string {
  const out: string[] = [];
  for (let p = t.parent; p; p = p.parent) if (p.title) out.unshift(p.title);
  return out.join(' › ') || '(root)';
}

/** A repeated test's verdicts in words: "5 passed of 5", "2 passed, 2 failed of 4", "5 known failures of 5". */
export function repeatCounts(r: { runs: number; passed: number; known: number; failed: number; skipped: number }): string {
  const parts = ([[r.passed, 'passed', 'passed'], [r.known, 'known failure', 'known failures'], [r.failed, 'failed', 'failed'], [r.skipped, 'skipped', 'skipped']] as const)
    .filter(([n]) => n > 0)
    .map(([n, one, many]) => `${n} ${n === 1 ? one : many}`);
  return `${parts.join(', ')} of ${r.runs}`;
}

function firstLine(s: string, max = 240): string {
  const l = s.split('\n').find((x) => x.trim()) ?? '';
  return l.length > max ? `${l.slice(0, max)}…` : l;
}

export default class HarnessReporter extends Base {
  private readonly collected: CollectedTest[] = [];
  private readonly failedTests: { n: number; t: Mocha.Runnable; err: Error }[] = [];
  private startedAt = new Date();
  private readonly tty = !!process.stderr.isTTY;
  private live = '';
  private depth = 0;

  constructor(runner: Mocha.Runner, options?: Mocha.MochaOptions) {
    super(runner, options);
    const out = (s: string) => process.stdout.write(`${s}\n`);
    const pad = () => '  '.repeat(this.depth + 1);
    runner.once(EVENT_RUN_BEGIN, () => (this.startedAt = new Date()));
    runner.on(EVENT_SUITE_BEGIN, (s: Mocha.Suite) => {
      this.depth = 0;
      for (let p = s.parent; p; p = p.parent) if (p.title) this.depth++;
      if (s.title) out(`\n${'  '.repeat(this.depth + 1)}${s.title}`);
      if (s.title) this.depth++;
    });
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
      this.clearLive();
      const took = t.duration !== undefined ? dim(` (${(t.duration / 1000).toFixed(1)} s)`) : '';
      const retried = (r: TestRecord | undefined) => (r?.attempts.length ? `\n${pad()}  ${yellow('↻')} ${dim(`retried on a fresh lab after a lab-infrastructure fault: ${r.attempts.map((a) => a.infrastructure).join('; ')}`)}` : '');
      if (state === 'passed' && record?.knownFailure) {
        const k = record.knownFailure;
        out(`${pad()}${yellow('⚠ KNOWN FAILURE')} ${t.title}${took}`);
        out(`${pad()}    ${dim('what happened:')} ${firstLine(k.observed)}`);
        out(`${pad()}    ${dim('known issue')} ${k.id}: ${k.summary} ${dim(`(${k.reference.slice(0, 160)})`)}${retried(record)}`);
      } else if (state === 'passed') out(`${pad()}${green('✔')} ${t.title}${took}${retried(record)}`);
      else if (state === 'pending') out(`${pad()}${dim(`- ${t.title} — skipped: ${record?.skipReason ?? 'not selected'}`)}`);
      else if (state === 'interrupted') out(`${pad()}${red('⊘')} ${t.title} — interrupted`);
      else {
        this.failedTests.push({ n: this.failedTests.length + 1, t, err: err ?? new Error('failed') });
        out(`${pad()}${red(`✖ ${this.failedTests.length})`)} ${t.title}${took}${retried(record)}`);
      }
    };
    runner.on(EVENT_TEST_PASS, (t) => add(t, 'passed'));
    runner.on(EVENT_TEST_FAIL, (t, err: Error) => add(t, 'failed', err)); // hooks too
    runner.on(EVENT_TEST_PENDING, (t) => add(t, 'pending'));
    // A live "which test, which step, elapsed" line on a TTY; nothing extra in CI logs.
    let testStart = 0;
    let current: Mocha.Runnable | undefined;
    runner.on(EVENT_TEST_BEGIN, (t) => {
      testStart = now();
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
        current.duration = now() - testStart;
        add(current, 'interrupted', new Error(`interrupted (${why}) during this test`));
      }
      await this.write(`\nRUN INTERRUPTED (${why})`);
    };
    progress.on('step', (p: StepProgress) => {
      if (!this.tty) return;
      const s = ((now() - testStart) / 1000).toFixed(1).padStart(6);
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
    void this.write('').then(() => fn?.(this.exitCode(failures)));
  }

  private exitCode(mochaFailures: number): number {
    const lab = runContext.notRestored ? 1 : 0;
    if (process.env.RDMA_FAILOVER_RUN !== '1') return mochaFailures + lab;
    if (mochaFailures || lab || this.unstable() > 0) return 1;
    return this.collected.some((c) => c.record?.knownFailure) ? EXIT_KNOWN_ONLY : 0;
  }

  private unstable(): number {
    return repeatStats(this.collected).filter((r) => r.unstable).length;
  }

  private written: Promise<void> | undefined;

  /** Writes reports/<run-id>/ and prints the closing lines, once (also for an interrupted run). */
  private write(banner: string): Promise<void> {
    this.written ??= this.writeOnce(banner);
    return this.written;
  }

  private failureList(): string {
    const lines: string[] = [];
    for (const f of this.failedTests) {
      lines.push(`\n  ${f.n}) ${suiteTitle(f.t)}\n       ${f.t.title}:`);
      const stack = (f.err.stack ?? '').split('\n').filter((l) => /^\s+at /.test(l)).slice(0, 6);
      lines.push(`     ${red(`${f.err.name}: ${f.err.message}`).split('\n').join('\n     ')}`, ...stack.map((l) => dim(l)));
    }
    return lines.join('\n');
  }

  private async writeOnce(banner: string): Promise<void> {
    const finish = (extra: string) => {
      if (runContext.notRestored) {
        extra += `\n${red('LAB NOT FULLY RESTORED')}:\n  ${runContext.notRestored.problems.join('\n  ')}\nrestore journals:\n  ${runContext.notRestored.journals.join('\n  ')}\n`;
      }
      if (runContext.stopped) {
        extra += `\n${red('RUN STOPPED')}: ${runContext.stopped.reason.split('\n')[0]}\n${runContext.stopped.journals.length ? `restore journals:\n  ${runContext.stopped.journals.join('\n  ')}\n` : ''}`;
      }
      const known = this.collected.filter((c) => c.state === 'passed' && c.record?.knownFailure);
      const passed = this.collected.filter((c) => c.state === 'passed' && !c.record?.knownFailure).length;
      const failed = this.collected.filter((c) => c.state === 'failed' || c.state === 'interrupted').length;
      const skipped = this.collected.filter((c) => c.state === 'pending').length;
      const stats = repeatStats(this.collected);
      const repeats = stats.length
        ? `\n${bold('repeats')}:\n${stats.map((r) => `  ${r.unstable ? red('UNSTABLE') : green('stable  ')} ${repeatCounts(r)} — ${r.title}${r.outage ? dim(` — outage min ${r.outage.minMs} / median ${r.outage.medianMs} / p90 ${r.outage.p90Ms} / max ${r.outage.maxMs} ms`) : ''}`).join('\n')}\n`
        : '';
      // one entry per test and issue (repeats of it counted, not listed again)
      const knownNames = new Map<string, number>();
      for (const c of known) {
        const k = `${c.record?.planId ?? c.title.replace(REPEAT, '')}${c.record?.ulp ? ` (${c.record.ulp})` : ''} → ${c.record?.knownFailure?.id}`;
        knownNames.set(k, (knownNames.get(k) ?? 0) + 1);
      }
      const knownLine = known.length ? `${yellow(`${known.length} known failure${known.length > 1 ? 's' : ''}`)}: ${[...knownNames].map(([k, n]) => (n > 1 ? `${k} ×${n}` : k)).join(', ')}\n` : '';
      process.stdout.write(`${banner ? `${banner}\n` : ''}${this.failureList()}\n${extra}${repeats}\n${knownLine}${passed} passed, ${failed} failed, ${skipped} skipped\n`);
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
