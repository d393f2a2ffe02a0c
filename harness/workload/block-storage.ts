// What every block/file storage ULP workload shares (iSER, NFS/RDMA, NVMe/RDMA, SRP): a target and
// an initiator set up by the ULP's own part, fio with end-to-end verification on the initiator, one
// stable event stream, a bounded finish, and a teardown that undoes — newest first — exactly what
// the setup changed and nothing else (see undo.ts). The per-ULP part is bringUp() and its hooks.
import { Subject, type Observable, type Subscription } from 'rxjs';
import { now, sleep } from '../clock.ts';
import type { Lab } from '../lab/lab.ts';
import type { WorkloadEvent } from '../monitor/events.ts';
import type { Node } from '../node/node.ts';
import { ipOf } from '../net/ip.ts';
import type { ConnectionRef } from '../timeline/timeline.ts';
import type { Ulp } from '../topology/defaults.ts';
import { runFio, type FioOptions, type FioResult } from './fio.ts';
import { UndoStack } from './undo.ts';
import type { Workload, WorkloadResult } from './workload.ts';

export interface BlockStorageOptions {
  sizeMiB?: number;
  /** how many times the area is written and verified */
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

/** Stops the processes carrying the tag (and only them). */
const STOP_TAGGED = `tag=$1; found=
for p in /proc/[0-9]*; do
  tr '\\0' '\\n' < "$p/environ" 2>/dev/null | grep -qx "RF_UNDO_ID=$tag" && { found="$found \${p#/proc/}"; kill "\${p#/proc/}"; }
done
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
    this.size = { sizeMiB: 48, loops: 3, rateMiBs: 0, ...size };
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
  /** The ULP's state when the I/O ended, for the summary, and data errors beyond fio's (SCSI errors). */
  protected finalState(): Promise<{ words: string; details: Record<string, unknown>; dataErrors: string[] }> {
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

  async start(): Promise<void> {
    this.onStart();
    this.fio = runFio(
      this.lab.node(this.client),
      this.name,
      { filename: this.dataPath, sizeMiB: this.size.sizeMiB, loops: this.size.loops, ...(this.size.rateMiBs ? { rateMiBs: this.size.rateMiBs } : {}), ...this.fioSettings() },
      30 * 60_000,
    );
    this.subs.push(
      this.fio.events$.subscribe((e) => {
        if (e.kind === 'error') {
          const text = typeof e.data?.text === 'string' ? e.data.text : '';
          this.errors.push(text);
          if (/error/i.test(text)) this.ioFailed ??= text;
        }
        // After an I/O error, fio's byte counts include failed I/O: that is not I/O resuming.
        if (e.kind === 'progress' && this.ioFailed) return;
        this.extra.next(e);
        if (e.kind === 'progress' && e.done !== undefined) this.done = e.done;
      }),
    );
    await sleep(0);
  }

  async finish(timeoutMs = 10 * 60_000): Promise<WorkloadResult> {
    const r: FioResult | undefined = this.fio ? await Promise.race([this.fio.result, sleep(timeoutMs).then(() => undefined)]) : undefined;
    const st = await this.finalState().catch((e: Error) => ({ words: `state unknown (${e.message})`, details: {}, dataErrors: [] as string[] }));
    return {
      workload: this.name,
      ulp: this.ulp,
      dataOk: !!r?.ok && st.dataErrors.length === 0,
      summary: `${r ? r.summary : `fio did not finish within ${timeoutMs} ms`}${st.words ? `; ${st.words}` : ''}`,
      bytes: (r?.writtenBytes ?? 0) + (r?.readBytes ?? 0),
      details: { fio: r, dataPath: this.dataPath, ...st.details, finishedAt: now() },
      errors: [...this.errors, ...(r?.verifyErrors ?? []), ...st.dataErrors].slice(0, 40),
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
    await this.lab.node(this.client).settle();
    const failed = await this.undo.run();
    if (failed.length) throw new Error(`${this.name}: could not undo: ${failed.join('; ')}`);
  }

  // ---- helpers for the parts: every change goes through the undo stack ----

  /** Loads the modules that are missing, and only those are unloaded at teardown. */
  protected async modules(node: Node, wanted: readonly string[]): Promise<void> {
    const have = new Set((await node.run(['cat', '/proc/modules'], { timeoutMs: 15_000 })).stdout.split('\n').map((l) => l.split(' ')[0]));
    const missing = wanted.filter((m) => !have.has(m));
    if (!missing.length) return;
    await this.undo.change({ node: node.name, what: `unload ${missing.join(', ')}`, kind: 'modules', modules: missing }, () => node.run(['modprobe', '-a', ...missing], { timeoutMs: 120_000 }));
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
    const r = await node.run(['sh', '-c', 'ls /sys/kernel/config/target/core 2>/dev/null; true'], { timeoutMs: 15_000 });
    const used = new Set(r.stdout.split('\n').filter(Boolean));
    for (let i = 4242; ; i++) if (!used.has(`${plugin}_${i}`)) return `${plugin}_${i}`;
  }
}

