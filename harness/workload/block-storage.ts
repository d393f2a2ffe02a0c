// What every block/file storage ULP workload shares (iSER, NFS/RDMA, NVMe/RDMA, SRP): a target and
// an initiator set up by the ULP's own part, fio with end-to-end verification on the initiator, one
// stable event stream, a bounded finish, and a teardown that undoes — newest first — exactly what
// the setup changed and nothing else (see undo.ts). The per-ULP part is bringUp() and its hooks.
import { Subject, type Observable, type Subscription } from 'rxjs';
import { now, sleep, span } from '../clock.ts';
import type { Lab } from '../lab/lab.ts';
import type { WorkloadEvent } from '../monitor/events.ts';
import type { Node } from '../node/node.ts';
import { ipOf } from '../net/ip.ts';
import type { ConnectionRef } from '../timeline/timeline.ts';
import type { Ulp } from '../topology/defaults.ts';
import { meansIoFailed, nextStamp, runFio, type FioOptions, type FioResult } from './fio.ts';
import { UndoStack } from './undo.ts';
import { modulesToLoad, perTestModules } from './modules.ts';
import type { Workload, WorkloadResult } from './workload.ts';

export interface BlockStorageOptions {
  sizeMiB?: number;
  /** at most this many passes (each writes the area and verifies it); finish() ends them earlier */
  loops?: number;
  /** fio MiB/s cap (honesty tests that corrupt data before fio's check reaches it) */
  rateMiBs?: number;
}

/** The lab cannot host this workload without touching what is not the harness's: a SKIP, not a FAIL. */
export class LabPreconditionError extends Error {
  override name = 'LabPreconditionError';
}

/** Starts a daemon in the foreground under setsid, tagged so that exactly it can be stopped later. */
const START_TAGGED = `tag=$1; shift
RF_UNDO_ID=$tag setsid "$@" </dev/null >/dev/null 2>&1 &
sleep 0.3
kill -0 $! 2>/dev/null || { echo "$1 exited at once" >&2; exit 1; }`;

/** Stops the processes carrying the tag (and only them). One grep reads every environ (one
 *  tr | grep pair per process cost seconds on an emulated guest). */
const STOP_TAGGED = `tag=$1
found=$(grep -lsxzF "RF_UNDO_ID=$tag" /proc/[0-9]*/environ | cut -d/ -f3)
[ -n "$found" ] || exit 0
kill $found 2>/dev/null
for i in 1 2 3 4 5 6 7 8 9 10; do
  left=; for p in $found; do [ -e "/proc/$p" ] && left="$left $p"; done
  [ -z "$left" ] && exit 0; sleep 0.3
done
for p in $left; do kill -9 "$p" 2>/dev/null; done; exit 0`;

export abstract class BlockStorageWorkload implements Workload {
  abstract readonly name: string;
  abstract readonly ulp: Ulp;
  protected readonly lab: Lab;
  protected readonly undo: UndoStack;
  protected readonly size: Required<BlockStorageOptions>;
  private readonly extra = new Subject<WorkloadEvent>();
  /** one stable stream (monitors subscribe before I/O starts): fio's events are forwarded into it */
  readonly events$: Observable<WorkloadEvent> = this.extra.asObservable();
  private fio: ReturnType<typeof runFio> | undefined;
  /** the fio passes, resolving when the last one ended */
  private passes: Promise<FioResult[]> | undefined;
  /** finish() was called: no new pass starts */
  private ending = false;
  private readonly subs: Subscription[] = [];
  private torn = false;
  /** the file or block device fio verifies, on the client */
  dataPath = '';
  /** the first I/O error fio reported: progress stops counting from there */
  ioFailed: string | undefined;
  done = 0;
  readonly errors: string[] = [];

  constructor(lab: Lab, owner: string, size: BlockStorageOptions) {
    this.lab = lab;
    this.undo = new UndoStack(lab, owner);
    // 16 MiB passes (a pass is what finish() may wait for), as many as the test needs.
    this.size = { sizeMiB: 16, loops: 1000, rateMiBs: 0, ...size };
  }

  /** The node fio runs on (initiator, client, host). */
  protected abstract readonly client: string;
  /** Sets the target and the initiator up (every change through this.undo); returns the data path. */
  protected abstract bringUp(): Promise<string>;
  abstract connection(): ConnectionRef;
  /** fio settings of this ULP (block size, queue depth). */
  protected fioSettings(): Partial<FioOptions> {
    return {};
  }
  /** The ULP's state when the I/O ended (fio's passes given), for the summary, and data errors
   *  beyond fio's (SCSI errors). */
  protected finalState(_passes: readonly FioResult[]): Promise<{ words: string; details: Record<string, unknown>; dataErrors: string[] }> {
    return Promise.resolve({ words: '', details: {}, dataErrors: [] });
  }
  /** Started with the I/O (e.g. a controller-state poller); stopped at teardown. */
  protected onStart(): void {}

  protected ip(node: string): string {
    return ipOf(this.lab.spec(node).bonds![0]!.address);
  }

  /** Events of the ULP's own (state changes) into the workload's stream. */
  protected emit(e: WorkloadEvent): void {
    this.extra.next(e);
  }

  protected own(sub: Subscription): void {
    this.subs.push(sub);
  }

  /** Target up, initiator connected; a half-done setup is undone before the error goes on. */
  async setup(): Promise<this> {
    try {
      this.dataPath = await this.bringUp();
      return this;
    } catch (e) {
      await this.teardown().catch(() => undefined);
      throw e;
    }
  }

  /**
   * Verified I/O in passes: each pass is one fio run that writes the whole area and then reads every
   * block back (every byte compared with the pass's own stamp and the block's offset). Passes follow
   * each other until finish() asks the I/O to end: it ends after the current pass, so every block
   * written — before, during and after an outage — is verified, and nothing longer than one pass is
   * waited for (the area is sized for that).
   */
  async start(): Promise<void> {
    this.onStart();
    const node = this.lab.node(this.client);
    const opts: Omit<FioOptions, 'stamp'> = { filename: this.dataPath, sizeMiB: this.size.sizeMiB, loops: 1, ...(this.size.rateMiBs ? { rateMiBs: this.size.rateMiBs } : {}), ...this.fioSettings() };
    this.passes = (async () => {
      const results: FioResult[] = [];
      let base = 0;
      let stamp = 0;
      for (let pass = 1; pass <= this.size.loops && !this.torn; pass++) {
        // a stamp of its own for each pass: a lost write leaves the last pass's block, which must fail
        stamp = nextStamp(stamp);
        this.fio = runFio(node, this.name, { ...opts, stamp }, 30 * 60_000);
        const sub = this.fio.events$.subscribe((e) => {
          if (e.kind === 'error') {
            const text = typeof e.data?.text === 'string' ? e.data.text : '';
            this.errors.push(text);
            if (meansIoFailed(text)) this.ioFailed ??= text;
          }
          if (e.kind === 'final') return; // the run's own final event comes after the last pass
          // After an I/O error, fio's byte counts include failed I/O: that is not I/O resuming.
          if (e.kind === 'progress' && this.ioFailed) return;
          const ev = e.kind === 'progress' && e.done !== undefined ? { ...e, done: base + e.done } : e;
          this.extra.next(ev);
          if (ev.kind === 'progress' && ev.done !== undefined) this.done = ev.done;
        });
        this.subs.push(sub);
        const r = await this.fio.result;
        results.push(r);
        base += r.writtenBytes + r.readBytes;
        if (!r.ok || this.ending) break;
      }
      this.extra.next({ source: 'workload', t: now(), node: this.client, workload: this.name, kind: 'final', done: base });
      return results;
    })();
    await sleep(0);
  }

  async finish(timeoutMs = 10 * 60_000): Promise<WorkloadResult> {
    this.ending = true;
    const passes = this.passes ? await Promise.race([this.passes, sleep(timeoutMs).then(() => undefined)]) : undefined;
    const st = await this.finalState(passes ?? []).catch((e: Error) => ({ words: `state unknown (${e.message})`, details: {}, dataErrors: [] as string[] }));
    const written = (passes ?? []).reduce((a, r) => a + r.writtenBytes, 0);
    const read = (passes ?? []).reduce((a, r) => a + r.readBytes, 0);
    const bad = (passes ?? []).find((r) => !r.ok);
    const words = !passes
      ? `fio did not finish within ${timeoutMs} ms`
      : `${passes.length} pass(es) of ${this.size.sizeMiB} MiB on ${this.dataPath}: ${(written / 2 ** 20).toFixed(1)} MiB written, ${(read / 2 ** 20).toFixed(1)} MiB verified${bad ? `; ${bad.summary}` : ', no errors'}`;
    return {
      workload: this.name,
      ulp: this.ulp,
      dataOk: !!passes && passes.length > 0 && !bad && st.dataErrors.length === 0,
      summary: `${words}${st.words ? `; ${st.words}` : ''}`,
      bytes: written + read,
      details: { fio: passes, dataPath: this.dataPath, ...st.details, finishedAt: now() },
      errors: [...this.errors, ...(passes ?? []).flatMap((r) => r.verifyErrors), ...st.dataErrors].slice(0, 40),
      running: !passes,
    };
  }

  /** Stops the I/O and undoes the setup, newest first. An undo that fails is a teardown failure
   *  (the lab is not as found) and stays journaled for the next run. */
  async teardown(): Promise<void> {
    if (this.torn) return;
    this.torn = true;
    this.fio?.stop();
    for (const s of this.subs) s.unsubscribe();
    this.extra.complete();
    await span(`${this.client}: the I/O's commands end`, () => this.lab.node(this.client).settle());
    const failed = await this.undo.run();
    if (failed.length) throw new Error(`${this.name}: could not undo: ${failed.join('; ')}`);
  }

  // ---- helpers for the parts: every change goes through the undo stack ----

  /**
   * The two sides' set-up at once (target and initiator each in order). Every side is waited for
   * even when one fails, so nothing is still changing the lab when the teardown runs.
   */
  protected async bothSides(...sides: Promise<unknown>[]): Promise<void> {
    const r = await Promise.allSettled(sides);
    const failed = r.find((x): x is PromiseRejectedResult => x.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /**
   * Loads the modules that are missing; those are unloaded at teardown, except the kernel libraries
   * among them (SESSION_LIBRARIES), which stay for the lab session and go at fabric down.
   */
  protected async modules(node: Node, wanted: readonly string[]): Promise<void> {
    const load = await modulesToLoad(node, wanted);
    if (!load.length) return;
    const modprobe = () => node.run(['modprobe', '-a', ...wanted], { timeoutMs: 120_000 });
    const ours = perTestModules(load);
    if (!ours.length) return void (await modprobe());
    await this.undo.change({ node: node.name, what: `unload ${ours.join(', ')}`, kind: 'modules', modules: ours }, modprobe);
  }

  /** Starts a daemon (in the foreground, tagged) unless one already runs: then it is left alone. */
  protected async daemon(node: Node, name: string, argv: readonly string[]): Promise<void> {
    if ((await node.exec(['pgrep', '-x', name], { timeoutMs: 15_000 })).exitCode === 0) return;
    const tag = `${this.name}-${name}-${Math.random().toString(36).slice(2, 10)}`;
    await this.undo.change({ node: node.name, what: `stop the ${name} the harness started`, kind: 'argv', argv: ['sh', '-c', STOP_TAGGED, 'stop-tagged', tag] }, () =>
      node.run(['sh', '-c', START_TAGGED, 'start-tagged', tag, ...argv], { timeoutMs: 30_000 }),
    );
  }

  /** A configfs HBA name of the plugin's kind that nothing uses (LIO names HBAs PLUGIN_INDEX). */
  protected async freeHba(node: Node, plugin: string): Promise<string> {
    const r = await node.run(['sh', '-c', 'ls /sys/kernel/config/target/core 2>/dev/null; true', 'lio-backstores'], { timeoutMs: 15_000 });
    const used = new Set(r.stdout.split('\n').filter(Boolean));
    for (let i = 4242; ; i++) if (!used.has(`${plugin}_${i}`)) return `${plugin}_${i}`;
  }
}

