// Node health: is the kernel still fit to run the next test? Crashed, wedged and unresponsive nodes
// are detected here, with their evidence, in bounded time.
import { allUlps } from '../ulp/registry.ts';
import { NodeDownError, type ExecResult, type Node } from '../node/node.ts';
import { parseQps } from '../fabric/rdma.ts';
import type { KmsgEvent, LabEvent } from '../monitor/events.ts';
import { UNHEALTHY } from '../monitor/parse.ts';

export type HealthKind = 'unresponsive' | 'gsi-qp-error' | 'nic-stall' | 'd-state' | 'kernel-log' | 'no-progress' | 'oopsed' | 'freed-in-use';

export interface HealthFinding {
  node: string;
  kind: HealthKind;
  detail: string;
  /** lines that prove it (kernel log, stacks, rdma res) */
  evidence: string[];
  /** a fault of the VM lab's stand-in (rdma_rxe), not of the path under test */
  labInfrastructure?: boolean;
  /** expected by the test (with its reason): recorded, does not fail it */
  allowedBecause?: string;
}

/** Tasks in D state (one awk pass over /proc), each with its kernel stack. */
export const STUCK_SCRIPT = `awk '/^State:/ && $2 == "D" { f = FILENAME; sub("/status", "", f); sub("/proc/", "", f); print f }' /proc/[0-9]*/status 2>/dev/null |
while read -r p; do
  echo "@@ $p $(cat "/proc/$p/comm" 2>/dev/null)"
  head -n 25 "/proc/$p/stack" 2>/dev/null
done`;

/**
 * The kernel's word that an object was freed while still referenced: a refcount underflow
 * ("refcount_t: underflow; use-after-free.", "addition on 0; use-after-free.") or KASAN's report.
 */
export const FREED_IN_USE = 'refcount_t: underflow|use-after-free|BUG: KASAN';

/** include/linux/panic.h: TAINT_DIE (7) */
const TAINT_DIE = 1 << 7;

/** The RDMA core's code, and every ULP's (harness/ulp/). */
const RDMA_STACK = new RegExp([/rdma|ib_|rxe|cma_|cm_|destroy_id/.source, ...allUlps().map((u) => u.stackPattern.source)].join('|'), 'i');

/** A task killed while its asynchronous I/O is stuck under it cannot finish exiting: do_exit waits in
 *  exit_aio for requests the ULP never completes (measured: the fio an NFS test's teardown killed
 *  after rxe stopped its QP; its stack holds no RDMA frame). It keeps the mount, and its hung-task
 *  line, 20 s later, would land in the next test's kernel log. */
const STUCK_EXITING = /\bexit_aio\b/;

/** Is this task in D state stuck in RDMA/ULP code (or unable to exit because I/O under it is)? */
export function stuckInRdmaOrUlp(comm: string, stack: string): boolean {
  return RDMA_STACK.test(stack + comm) || STUCK_EXITING.test(stack);
}

/** The boot id, then "device count" of transmit timeouts per NIC (summed over its queues). */
const TX_TIMEOUTS = `cat /proc/sys/kernel/random/boot_id
for d in /sys/class/net/*/queues/tx-0/tx_timeout; do
  [ -r "$d" ] || continue; n=0; dev=\${d#/sys/class/net/}; dev=\${dev%%/*}
  for q in /sys/class/net/$dev/queues/tx-*/tx_timeout; do read -r v < "$q" && n=$((n + v)); done
  echo "$dev $n"
done`;

/** Per node and boot: the transmit timeouts seen at the first probe (what came before is not ours). */
const txBaseline = new Map<string, Map<string, number>>();

/**
 * What probeNode reads, each part a shell snippet: all of them in one round trip (six commands were
 * six round trips, 2-3 s per node and probe on an emulated guest), or one command each when that
 * does not come back whole.
 */
export const PROBE_PARTS = {
  qp: 'rdma -j res show qp 2>/dev/null',
  // This boot's kernel log, raw ("<level>[time] text"), read once: the health check after a test
  // takes its events since the test's mark from it (a second command before), and every probe scans
  // it for rxe's failed GSI send and for freed-in-use lines (two dmesg|grep pipelines before).
  kmsg: 'dmesg -r 2>/dev/null',
  tx: TX_TIMEOUTS,
  // (dash reads a byte at a time, and /proc/sys ends a read at an offset with EOF: no newline, status 1)
  taint: 't=; read -r t < /proc/sys/kernel/tainted; [ -n "$t" ] && echo "$t"',
  stuck: STUCK_SCRIPT,
} as const;

/** What one probe read: each part's output (undefined: not read, or its command failed). */
type ProbeRead = Partial<Record<keyof typeof PROBE_PARTS, string>>;

/** A raw kernel log's lines that make a node unfit whenever they came in this boot, without their
 *  level, at most three of each kind: rxe's failed GSI send ("wedged") and freed-in-use ("freed"). */
export function scanKernelLog(kmsg: string): { wedged: string; freed: string } {
  const freedRe = new RegExp(FREED_IN_USE);
  const wedged: string[] = [];
  const freed: string[] = [];
  for (const raw of kmsg.split('\n')) {
    const l = raw.replace(/^<\d+>/, '');
    if (wedged.length < 3 && /rdma_rxe: qp#1 Failed/.test(l)) wedged.push(l);
    if (freed.length < 3 && freedRe.test(l)) freed.push(l);
  }
  return { wedged: wedged.join('\n'), freed: freed.join('\n') };
}

/** The parts in sections headed "#rf NAME" ("#rf NAME-failed" after a part that failed), then "#rf end". */
export const PROBE_SCRIPT = [...Object.entries(PROBE_PARTS).map(([name, sh]) => `echo '#rf ${name}'\n{ ${sh}\n} || echo '#rf ${name}-failed'`), "echo '#rf end'"].join('\n');

/** The sections of PROBE_SCRIPT's output; undefined when the output is not complete. */
export function parseProbe(text: string): Map<string, string> | undefined {
  const out = new Map<string, string>();
  let cur: string | undefined;
  const body: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^#rf (\S+)$/.exec(line);
    if (m) {
      if (cur) out.set(cur, body.join('\n').trim());
      cur = m[1];
      body.length = 0;
    } else body.push(line);
  }
  return out.has('stuck') && cur === 'end' ? out : undefined;
}

/** Reads the probe's parts in one round trip; falls back to one command each (a part that hangs,
 *  such as an rdma res walk stuck on a freed id, then costs only itself). */
async function readProbe(node: Node, timeoutMs: number, first: Promise<ExecResult | undefined>): Promise<ProbeRead> {
  const names = Object.keys(PROBE_PARTS) as (keyof typeof PROBE_PARTS)[];
  const all = await first;
  const parts = all?.exitCode === 0 ? parseProbe(all.stdout) : undefined;
  if (parts) return Object.fromEntries(names.filter((k) => !parts.has(`${k}-failed`)).map((k) => [k, parts.get(k)]));
  const read: ProbeRead = {};
  for (const k of names) {
    const r = await node.exec(['sh', '-c', PROBE_PARTS[k], `probe-${k}`], { timeoutMs }).catch(() => undefined);
    if (r?.exitCode === 0) read[k] = r.stdout;
  }
  return read;
}

/** The probe's `freed` part (FREED_IN_USE lines of this boot's kernel log) as a finding, if any. */
export function freedInUseFinding(node: string, lines: string): HealthFinding | undefined {
  const freed = new RegExp(FREED_IN_USE);
  const evidence = lines.split('\n').map((l) => l.trim()).filter((l) => freed.test(l));
  if (!evidence.length) return undefined;
  return {
    node,
    kind: 'freed-in-use',
    detail: 'the kernel reported an object freed while still in use in this boot (refcount underflow / use-after-free): its memory may be corrupt, not fit for another test',
    evidence,
  };
}

/** Probes a node now: answers at all, GSI QPs, stalled NICs, tasks stuck in D state in RDMA/ULP code. */
export async function probeNode(node: Node, opts: { timeoutMs?: number; dStateGraceMs?: number } = {}): Promise<HealthFinding[]> {
  return (await probe(node, opts)).findings;
}

/**
 * The health check after a test: probeNode, and the kernel log since the test's mark (what
 * kernelLogSince returns), in one round trip — reading the log apart cost the emulated guest a
 * second command and a second pass over its log.
 */
export async function checkNode(node: Node, tag: string, opts: { timeoutMs?: number; dStateGraceMs?: number } = {}): Promise<{ findings: HealthFinding[]; log: KmsgEvent[] }> {
  const r = await probe(node, opts);
  return { findings: r.findings, log: r.kmsg === undefined ? [] : await kmsgSince(node.name, r.kmsg, tag) };
}

async function probe(node: Node, opts: { timeoutMs?: number; dStateGraceMs?: number }): Promise<{ findings: HealthFinding[]; kmsg?: string }> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const findings: HealthFinding[] = [];
  // The liveness check and the probe script at once (one round trip's wait, not two); the script's
  // answer counts only from a node that answered `true`.
  const script = node.exec(['sh', '-c', PROBE_SCRIPT, 'health-probe'], { timeoutMs }).catch(() => undefined);
  try {
    await node.run(['true'], { timeoutMs });
  } catch (e) {
    // (the script ends at its own bound, in the background: an unresponsive node is reported now)
    const detail = e instanceof NodeDownError ? e.message : `no answer within ${timeoutMs} ms: ${(e as Error).message}`;
    return { findings: [{ node: node.name, kind: 'unresponsive', detail, evidence: [] }] };
  }
  const read = await readProbe(node, timeoutMs, script);
  const { wedged, freed: freedLines } = scanKernelLog(read.kmsg ?? '');
  if (read.qp !== undefined) {
    const gsi = parseQps(read.qp).filter((q) => q.type === 'GSI' || q.lqpn === 1);
    const dead = gsi.filter((q) => q.state === 'ERR' || q.state === 'SQE');
    if (dead.length) {
      findings.push({
        node: node.name,
        kind: 'gsi-qp-error',
        detail: `GSI QP (QP1) of ${dead.map((q) => q.ifname).join(', ')} is in ${dead[0]!.state}: no RDMA CM connection can be made on this node any more`,
        evidence: [read.qp.trim()],
      });
    }
  }
  // rxe (6.1) wedges its GSI QP without saying so in `rdma res`: a send that fails (the GID it
  // names went away in a failover: rxe_req.c "Failed allocating skb") runs the completer's
  // COMPST_ERROR → rxe_qp_error(), which puts the responder in ERROR too; the MAD layer's recovery
  // (SQE → RTS, mad.c ib_mad_send_error) restores only the requester and completer (rxe_qp.c,
  // IB_QPS_RTS). QP1 shows RTS and sends, but never receives a MAD again: no CM on this node until
  // the device is recreated. Its only trace is that kernel line, so any in this boot counts.
  if (wedged && !findings.some((f) => f.kind === 'gsi-qp-error')) {
    findings.push({
      node: node.name,
      kind: 'gsi-qp-error',
      detail: 'rdma_rxe failed a send on the GSI QP (qp#1) in this boot: rdma res still says RTS, but its receive side is in ERROR, so no RDMA CM connection can be made on this node any more',
      evidence: wedged.split('\n'),
    });
  }
  // A NIC whose transmit queue timed out since the first probe of this boot (the kernel counts
  // them per queue): stalled (in the VM lab, QEMU's virtio-net stopped taking packets).
  if (read.tx !== undefined) {
    const [boot = '', ...lines] = read.tx.trim().split('\n');
    const now = new Map(lines.map((l) => l.split(' ') as [string, string]).map(([d, n]) => [d, Number(n)]));
    const key = `${node.name} ${boot}`;
    const base = txBaseline.get(key) ?? (txBaseline.set(key, now), now);
    const grew = [...now].filter(([d, n]) => n > (base.get(d) ?? 0));
    if (grew.length) {
      findings.push({
        node: node.name,
        kind: 'nic-stall',
        detail: `transmit queue timeouts on ${grew.map(([d, n]) => `${d} (${n - (base.get(d) ?? 0)})`).join(', ')}: the NIC stopped sending`,
        evidence: grew.map(([d, n]) => `/sys/class/net/${d}/queues/tx-*/tx_timeout: ${n}`),
        labInfrastructure: true,
      });
    }
  }
  // A kernel that oopsed (taint flag D) keeps running with whatever the dead task held: not fit
  // for the next test, whatever its log says now.
  if (read.taint !== undefined && (Number(read.taint.trim()) & TAINT_DIE) !== 0) {
    findings.push({ node: node.name, kind: 'oopsed', detail: `the kernel oopsed since boot (taint ${read.taint.trim()}, flag D): not fit for another test`, evidence: [] });
  }
  // An object freed while still referenced (a WARN, taint W, not D): its memory may be reused
  // under whoever still holds it, so the kernel is as unfit as after an oops. Measured: after
  // RF-04 NFS's rpcrdma double put (a refcount warning, no oops) the next tests ran on that boot,
  // and RF-06 NFS's ADDR_CHANGE oopsed in xprt_force_disconnect (P1, ff61d57) — a failure of the
  // previous test's damage, not of RF-06. Any such line in this boot counts, as for an oops.
  const freed = freedInUseFinding(node.name, freedLines);
  if (freed) findings.push(freed);
  // D state: sample twice; a task still in D state after the grace period is stuck, not busy.
  const first = new Map([...parseStuck(read.stuck ?? '')].filter(([, t]) => stuckInRdmaOrUlp(t.comm, t.stack)));
  if (first.size) {
    await new Promise((r) => setTimeout(r, opts.dStateGraceMs ?? 3000));
    const second = await stuckTasks(node, timeoutMs);
    const stuck = [...second.entries()].filter(([pid, t]) => first.has(pid) && stuckInRdmaOrUlp(t.comm, t.stack));
    if (stuck.length) {
      findings.push({
        node: node.name,
        kind: 'd-state',
        detail: `${stuck.length} task(s) stuck in D state in RDMA/ULP code: ${stuck.map(([pid, t]) => `${t.comm}[${pid}]`).join(', ')}`,
        evidence: stuck.map(([pid, t]) => `${t.comm}[${pid}]:\n${t.stack}`),
      });
    }
  }
  return { findings, kmsg: read.kmsg };
}

/** Of the tasks in D state (parseStuck), those stuck in RDMA/ULP code, as "comm[pid]". */
export function stuckInRdmaNames(tasks: ReadonlyMap<string, { comm: string; stack: string }>): string[] {
  return [...tasks].filter(([, t]) => stuckInRdmaOrUlp(t.comm, t.stack)).map(([pid, t]) => `${t.comm}[${pid}]`);
}

async function stuckTasks(node: Node, timeoutMs: number): Promise<Map<string, { comm: string; stack: string }>> {
  const r = await node.exec(['sh', '-c', STUCK_SCRIPT, 'stuck-tasks'], { timeoutMs }).catch(() => undefined);
  return parseStuck(r?.stdout ?? '');
}

/** STUCK_SCRIPT's output: each task in D state, by pid, with its kernel stack. */
export function parseStuck(text: string): Map<string, { comm: string; stack: string }> {
  const out = new Map<string, { comm: string; stack: string }>();
  let cur: { pid: string; comm: string; stack: string[] } | undefined;
  const flush = () => cur && out.set(cur.pid, { comm: cur.comm, stack: cur.stack.join('\n') });
  for (const line of text.split('\n')) {
    const m = /^@@ (\d+) (.*)$/.exec(line);
    if (m) {
      flush();
      cur = { pid: m[1]!, comm: m[2]!, stack: [] };
    } else if (cur && line) cur.stack.push(line);
  }
  flush();
  return out;
}

/** Kernel log lines recorded during a test that mean the kernel is not healthy (with context). */
export function kernelLogFindings(events: readonly LabEvent[], allow: readonly { pattern: string; reason: string }[] = []): HealthFinding[] {
  const allowed = allow.map((a) => new RegExp(a.pattern));
  const kmsg = events.filter((e): e is KmsgEvent => e.source === 'kmsg');
  const byNode = new Map<string, KmsgEvent[]>();
  for (const e of kmsg) byNode.set(e.node, [...(byNode.get(e.node) ?? []), e]);
  const out: HealthFinding[] = [];
  for (const [node, lines] of byNode) {
    const bad = lines.filter((e) => UNHEALTHY.includes(e.cls) && !allowed.some((r) => r.test(e.text)));
    if (!bad.length) continue;
    // The oops/warning with the lines that follow it (its call trace), as the kernel printed them.
    const first = lines.indexOf(bad[0]!);
    const context = lines.slice(Math.max(0, first - 2), first + 60).map((e) => `[${e.kernelTs.toFixed(6)}] ${e.text}`);
    out.push({ node, kind: 'kernel-log', detail: `${bad.length} kernel log line(s) of class ${[...new Set(bad.map((b) => b.cls))].join(', ')}: ${bad[0]!.text}`, evidence: context });
  }
  // rxe failing to send on the GSI QP: the VM lab's stand-in wedged (see probeNode's gsi-qp-error).
  for (const e of kmsg) {
    if (GSI_SEND_FAILED.test(e.text)) {
      out.push({ node: e.node, kind: 'gsi-qp-error', detail: 'rdma_rxe could not send on the GSI QP (qp#1) during the failover: its receive side goes to ERROR for good and CM traffic stops (see probeNode)', evidence: [`[${e.kernelTs.toFixed(6)}] ${e.text}`], labInfrastructure: true });
    }
  }
  // An emulated NIC that stops taking packets (QEMU virtio-net: the device never consumes the
  // transmit ring; cf. qemu issue 1365): the VM lab's wiring, not the path under test.
  const stalls = new Set<string>();
  for (const e of kmsg) {
    if (!stalls.has(e.node) && NIC_STALL.test(e.text)) {
      stalls.add(e.node);
      out.push({ node: e.node, kind: 'nic-stall', detail: 'an emulated virtio-net NIC stopped transmitting (its transmit ring was not consumed): the VM lab\'s wiring, not the path under test', evidence: [`[${e.kernelTs.toFixed(6)}] ${e.text}`], labInfrastructure: true });
    }
  }
  return out;
}

/** rxe's words for a send on the GSI QP that failed (see probeNode: its receive side stays in ERROR). */
export const GSI_SEND_FAILED = /rdma_rxe: qp#1 Failed allocating skb/;

/** Why an attempt was stopped at rxe's failed GSI send (known issues match these words). */
export function gsiSendFailedMessage(node: string, line: string, during: string): string {
  return `lab infrastructure: ${node}'s soft-RoCE GSI QP (qp#1) failed a send ("${line.trim()}"): rxe leaves its receive side in ERROR, so no RDMA CM connection can be made on ${node} any more${during ? ` — stopped during ${during}` : ''}`;
}

/** The guest kernel's words for a virtio-net transmit ring QEMU stopped consuming. */
export const NIC_STALL = /virtio_net \S+ \S+: (NETDEV WATCHDOG: .*transmit queue \d+ timed out|TX timeout on queue)/;

/** The kernel log line of a mark (markKernelLog writes it; kernelLogSince finds it). */
export function kernelMark(tag: string): string {
  return `rf-mark ${tag}`;
}

/** Marks the kernel log of a node; kernelLogSince returns what came after the mark. */
export async function markKernelLog(node: Node, tag: string): Promise<void> {
  await node.exec(['sh', '-c', 'echo "$1" > /dev/kmsg', 'mark', kernelMark(tag)], { timeoutMs: 15_000 }).catch(() => undefined);
}

export async function kernelLogSince(node: Node, tag: string): Promise<KmsgEvent[]> {
  const r = await node.exec(['dmesg', '-r'], { timeoutMs: 20_000 }).catch(() => undefined);
  if (!r || r.exitCode !== 0) return [];
  return kmsgSince(node.name, r.stdout, tag);
}

/** The events of a raw kernel log (`dmesg -r`) after the mark of `tag` (its last 400 lines when the mark is not in it). */
export async function kmsgSince(node: string, raw: string, tag: string): Promise<KmsgEvent[]> {
  const lines = raw.split('\n');
  const at = lines.findIndex((l) => l.endsWith(kernelMark(tag)));
  const { parseKmsg } = await import('../monitor/parse.ts');
  const out: KmsgEvent[] = [];
  for (const l of at >= 0 ? lines.slice(at + 1) : lines.slice(-400)) {
    const p = parseKmsg(l);
    if (p && 'event' in p) out.push({ ...p.event, t: 0, node });
  }
  return out;
}

/** Kernel messages from a serial console ("[  123.456789] text"): evidence even when SSH is dead. */
/** SCSI I/O errors the kernel logged since the mark (for one disk, when named), as evidence lines. */
export async function scsiErrorsSince(node: Node, tag: string, dev: string): Promise<string[]> {
  return (await kernelLogSince(node, tag))
    .filter((e) => /I\/O error|critical medium error|blk_update_request/.test(e.text) && (!dev || e.text.includes(dev)))
    .slice(0, 20)
    .map((e) => `[${e.kernelTs.toFixed(6)}] ${e.text}`);
}

export async function consoleFindings(node: string, text: string, allow: readonly { pattern: string; reason: string }[] = []): Promise<HealthFinding[]> {
  const { classifyKmsg, UNHEALTHY: BAD } = await import('../monitor/parse.ts');
  const allowed = allow.map((a) => new RegExp(a.pattern));
  const lines = text.split('\n').map((l) => l.replace(/\r$/, ''));
  const idx = lines.findIndex((l) => {
    const m = /^\[\s*\d+\.\d+\] (.*)$/.exec(l);
    return !!m && BAD.includes(classifyKmsg(m[1]!)) && !allowed.some((r) => r.test(m[1]!));
  });
  if (idx < 0) return [];
  const first = consoleLineText(lines[idx]!);
  // A crash after the first bad line (a hung task, then the oops that killed the node) is the
  // headline: a node that stopped answering is explained by its last words, not its first.
  const crash = crashSummary(lines.slice(idx));
  const end = Math.max(idx + 80, crash ? idx + crash.endLine + 1 : 0);
  return [{ node, kind: 'kernel-log', detail: `serial console: ${crash ? crash.text : first}`, evidence: lines.slice(Math.max(0, idx - 2), end) }];
}

/** How long a node whose console shows a crash has to answer before it counts as down. */
export const DOWN_PROBE_MS = 5000;

/**
 * VM lab, during or after a test: a node whose serial console (since the test's mark) shows a kernel crash,
 * and that then does not answer `true` within DOWN_PROBE_MS, is down: why, else undefined. A node
 * that oopsed in a worker but still answers is not: its teardown runs as usual.
 */
export async function downAfterCrash(node: Node, consoleText: string | (() => string), probeMs = DOWN_PROBE_MS): Promise<string | undefined> {
  const read = typeof consoleText === 'string' ? () => consoleText : consoleText;
  if (!crashSummary(read().split('\n'))) return undefined;
  // The verdict at the bound itself (a timed-out command takes 2 s more to give up on its channel);
  // the command left behind fails the moment the node is marked down.
  let timer: NodeJS.Timeout | undefined;
  const answered = await Promise.race([
    node.exec(['true'], { timeoutMs: probeMs }).then((r) => r.exitCode === 0, () => false),
    new Promise<boolean>((res) => (timer = setTimeout(() => res(false), probeMs))),
  ]);
  clearTimeout(timer);
  if (answered) return undefined;
  // read again: a crash seen as it was being printed has its whole story by now
  const crash = crashSummary(read().split('\n'))!;
  const what = crash.text.length > 160 ? `${crash.text.slice(0, 160)}…` : crash.text;
  return `${node.name} is down: its serial console shows a ${what}, and it did not answer within ${probeMs} ms`;
}

/** A console or dmesg line without its "[  123.456789] " stamp (and a serial line's \r). */
const consoleLineText = (l: string): string => l.replace(/^\[\s*\d+\.\d+\] /, '').replace(/\r$/, '');

const CRASH = /\bOops\b|BUG: kernel NULL pointer dereference|BUG: unable to handle|kernel BUG at|general protection fault|Kernel panic - not syncing/;

/**
 * A kernel crash in console or dmesg lines, in one line: what it was, where (RIP), the call chain
 * (innermost first, "? " guesses left out) and whether it panicked — e.g. "kernel crash: BUG:
 * kernel NULL pointer dereference, address: 0000000000000010 at iscsi_verify_itt+0xd/0xe0
 * [libiscsi] ← iscsi_itt_to_ctask ← iser_task_rsp ← __ib_process_cq; Kernel panic - not syncing:
 * Fatal exception in interrupt". endLine: the index of its last line read.
 */
export function crashSummary(lines: readonly string[]): { text: string; endLine: number } | undefined {
  const start = lines.findIndex((l) => CRASH.test(consoleLineText(l)));
  if (start < 0) return undefined;
  let what = consoleLineText(lines[start]!);
  let rip = '';
  const calls: string[] = [];
  let panic = /Kernel panic - not syncing/.test(what) ? what : '';
  let end = start;
  let inTrace = false;
  for (let i = start + 1; i < lines.length && i < start + 120; i++) {
    const b = consoleLineText(lines[i]!);
    if (/^---\[ end Kernel panic/.test(b)) { end = i; break; }
    if (/Kernel panic - not syncing/.test(b)) { panic ||= b; end = i; continue; }
    const r = /^RIP: 0010:(\S+(?: \[\w+\])?)/.exec(b); // kernel mode (0033 is user space)
    if (r && !rip) rip = r[1]!;
    if (/^Call Trace:/.test(b)) { inTrace = !calls.length; continue; }
    if (inTrace) {
      if (/^<\/?(TASK|IRQ|EOI|SOFTIRQ)>$/.test(b.trim())) { if (b.trim() === '</TASK>') inTrace = false; continue; }
      const f = /^\s*([A-Za-z_][\w.]*)\+0x[0-9a-f]+\/0x[0-9a-f]+/.exec(b);
      if (f) { if (calls.length < 4) calls.push(f[1]!); continue; }
    }
    if (/^(BUG|Oops|general protection)/.test(b) && what.startsWith('Kernel panic')) what = b;
    end = i;
  }
  const where = rip ? ` at ${rip}${calls.length ? ` ← ${calls.join(' ← ')}` : ''}` : '';
  return { text: `kernel crash: ${what}${where}${panic && panic !== what ? `; ${panic}` : ''}`, endLine: end };
}
