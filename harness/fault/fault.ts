// Faults: inject, heal, describe. Every injection first writes how to heal it to a journal on the
// controller's disk, so a crash, Ctrl-C or SIGKILL cannot leave a link down: the next run replays it.
// Faults act through the Node interface and the lab's capabilities (carrier control, switch ports);
// they never know which kind of lab they run on.
import { randomUUID } from 'node:crypto';
import { now, sleep, waitFor } from '../clock.ts';
import type { Lab } from '../lab/lab.ts';
import type { FaultEvent, LabEvent } from '../monitor/events.ts';
import { nodeToController, type NodeClock } from '../monitor/clockmap.ts';
import { clearJournal, readJournal, writeJournal } from '../journal.ts';
import { readBond } from '../fabric/bond.ts';
import { sysfsBond } from '../fabric/fabric.ts';
import { hasClsact, hold, release } from '../net/hold.ts';

/** How to undo one injected action: data, so a later run can replay it. */
export type HealAction =
  | { id: string; type: 'carrier-restore'; node: string; ifname: string }
  | { id: string; type: 'link-up'; node: string; ifname: string }
  | { id: string; type: 'switch-port-up'; node: string; ifname: string }
  | { id: string; type: 'primary-restore'; node: string; bond: string; primary: string }
  | { id: string; type: 'hold-release'; node: string; dev: string; qdiscAdded: boolean };

type HealSpec = HealAction extends infer A ? (A extends HealAction ? Omit<A, 'id'> : never) : never;

export interface FaultTarget {
  node: string;
  ifname?: string;
  bond?: string;
}

export interface FaultContext {
  lab: Lab;
  /** where inject/heal events go (the monitor session) */
  record: (e: FaultEvent) => void;
  /** a composite fault (Flap) runs each of its parts through this, so each part is a fault of its
   *  own in the evidence (its own timeline); resolves with the part's inject time */
  part?: (part: Fault, inject: () => Promise<number>) => Promise<number>;
  /** a node's clock while the monitors run: maps a time stamped on the node to controller ms */
  clock?: (node: string) => NodeClock | undefined;
  /** the monitors' events so far (a live list; undefined while none run): a heal waits on them */
  events?: () => readonly LabEvent[] | undefined;
  /** the node's active slave now (the test's bond view: the monitors' stream while they run) */
  activeSlave?: (node: string) => Promise<string>;
}

export interface Fault {
  readonly kind: string;
  /** made of parts that are faults themselves (each flap of a Flap): the parts are in the evidence */
  readonly composite?: boolean;
  readonly target: FaultTarget;
  describe(): string;
  /** Injects the fault; resolves with the time it was issued (controller ms). */
  inject(ctx: FaultContext): Promise<number>;
  heal(ctx: FaultContext): Promise<void>;
}

// ---- the heal journal ----

function journalKey(lab: Lab): string {
  return lab.loaded.topology.name;
}

function pending(lab: Lab): HealAction[] {
  return readJournal<HealAction[]>('faults', journalKey(lab)) ?? [];
}

function remember(lab: Lab, a: HealAction): void {
  writeJournal('faults', journalKey(lab), [...pending(lab), a]);
}

function forget(lab: Lab, id: string): void {
  const left = pending(lab).filter((a) => a.id !== id);
  // An empty journal is no journal: nothing of the lab is left changed.
  if (left.length) writeJournal('faults', journalKey(lab), left);
  else clearJournal('faults', journalKey(lab));
}

async function runHeal(lab: Lab, a: HealAction): Promise<void> {
  switch (a.type) {
    case 'carrier-restore':
      if (!lab.carrier) throw new Error('no carrier control to restore with');
      await lab.carrier.restore(a.node, a.ifname);
      return;
    case 'link-up':
      await lab.node(a.node).run(['ip', 'link', 'set', 'dev', a.ifname, 'up']);
      return;
    case 'switch-port-up':
      if (!lab.switchPorts) throw new Error('no switch port control');
      await lab.switchPorts.up(a.node, a.ifname);
      return;
    case 'primary-restore':
      // "no primary" is restored by writing a newline: an empty write never reaches bonding's store
      // (the primary stayed set and every later carrier drop failed back to it).
      await lab.node(a.node).writeFile(sysfsBond(a.bond, 'primary'), a.primary || '\n');
      return;
    case 'hold-release':
      await release(lab.node(a.node), a.dev, a.qdiscAdded);
      return;
  }
}

/** Heals whatever an earlier (killed) run left injected. Returns what it did. */
export async function replayHealJournal(lab: Lab): Promise<string[]> {
  const done: string[] = [];
  for (const a of pending(lab)) {
    try {
      await runHeal(lab, a);
      done.push(`${a.type} ${a.node}/${'ifname' in a ? a.ifname : 'dev' in a ? a.dev : a.bond}`);
    } catch (e) {
      done.push(`FAILED ${a.type} ${a.node}: ${(e as Error).message}`);
      continue;
    }
    forget(lab, a.id);
  }
  return done;
}

/** Performs an action after journaling its undo; the undo is forgotten once it has run. */
class Journaled {
  private readonly actions: HealAction[] = [];
  async act(lab: Lab, heal: HealSpec, fn: () => Promise<void>): Promise<void> {
    const a = { ...heal, id: randomUUID() } as HealAction;
    remember(lab, a);
    this.actions.push(a);
    await fn();
  }
  async healAll(lab: Lab): Promise<void> {
    const errors: string[] = [];
    while (this.actions.length) {
      const a = this.actions.pop()!;
      try {
        await runHeal(lab, a);
        forget(lab, a.id);
      } catch (e) {
        errors.push(`${a.type} ${a.node}: ${(e as Error).message}`);
      }
    }
    if (errors.length) throw new Error(`healing failed: ${errors.join('; ')}`);
  }
}

function event(kind: 'inject' | 'heal', f: Fault, t: number): FaultEvent {
  return { source: 'fault', t, node: f.target.node, kind, fault: f.kind, target: f.target, description: f.describe() };
}

/**
 * A held handshake (net/hold.ts): the node's bond drops the RoCEv2 frames of one peer until
 * released. Not a fault of the plan (no event, no timeline): it places a fault, it is not one.
 */
export class HeldReplies {
  private readonly j = new Journaled();
  readonly node: string;
  readonly dev: string;
  readonly peerIp: string;
  constructor(node: string, dev: string, peerIp: string) {
    this.node = node;
    this.dev = dev;
    this.peerIp = peerIp;
  }
  describe(): string {
    return `${this.node}/${this.dev} drops the RoCEv2 frames from ${this.peerIp}`;
  }
  async hold(lab: Lab): Promise<void> {
    const n = lab.node(this.node);
    const qdiscAdded = !(await hasClsact(n, this.dev));
    await this.j.act(lab, { type: 'hold-release', node: this.node, dev: this.dev, qdiscAdded }, () => hold(n, this.dev, this.peerIp, qdiscAdded));
  }
  release(lab: Lab): Promise<void> {
    return this.j.healAll(lab);
  }
}

// ---- single-link faults ----

abstract class LinkFault implements Fault {
  abstract readonly kind: string;
  readonly target: FaultTarget & { ifname: string };
  protected readonly j = new Journaled();
  constructor(node: string, ifname: string) {
    this.target = { node, ifname };
  }
  abstract describe(): string;
  protected abstract cut(lab: Lab): Promise<void>;
  /** when the last cut was issued (controller ms) */
  protected cutAt = 0;
  async inject(ctx: FaultContext): Promise<number> {
    const t = now();
    this.cutAt = t;
    await this.cut(ctx.lab);
    ctx.record(event('inject', this, t));
    return t;
  }
  async heal(ctx: FaultContext): Promise<void> {
    const from = ctx.events?.()?.length ?? 0;
    await this.restore(ctx);
    await this.linkUp(ctx, from);
  }
  /** Undoes the cut (the heal event marks this moment) without waiting for the link. */
  async restore(ctx: FaultContext): Promise<void> {
    const t = now();
    await this.j.healAll(ctx.lab);
    ctx.record(event('heal', this, t));
  }
  /**
   * A heal is done when the node sees its link again, not when the command returned: a NIC (or a
   * real HCA port, which trains for seconds) reports carrier some time after the switch side is up,
   * and a flap's "up" half or the next test must not start before it. Bounded.
   */
  async linkUp(ctx: FaultContext, from = 0): Promise<void> {
    if (!this.carrierFollows) return;
    const { lab } = ctx;
    const { node, ifname } = this.target;
    // The link monitor reports the carrier within milliseconds; an SSH read under load takes
    // 0.5–1.5 s on the VM lab (measured: a flap's up half ran 1.2–3.4 s long). The events that
    // arrived since the restore began are enough; without them (no monitors, or none within a
    // second) the node is asked.
    if (ctx.events?.()) {
      const seen = await waitFor(
        `${node}/${ifname}: carrier back (link monitor)`,
        // arrived since the restore began and stamped after the cut: not a late report from before it
        () => ((ctx.events?.() ?? []).slice(from).some((e) => e.node === node && e.source === 'link' && e.ifname === ifname && e.carrier && e.t > this.cutAt) ? true : undefined),
        { timeoutMs: 1000, intervalMs: 10 },
      ).catch(() => false);
      if (seen) return;
    }
    await waitFor(
      `${node}/${ifname}: carrier back after the heal`,
      async () => ((await lab.node(node).exec(['cat', `/sys/class/net/${ifname}/carrier`], { timeoutMs: 10_000 })).stdout.trim() === '1' ? true : undefined),
      { timeoutMs: LINK_UP_TIMEOUT_MS, intervalMs: 100 },
    );
  }
  /** does the node's carrier follow this fault (not so for a switch port behind a live link) */
  protected readonly carrierFollows: boolean = true;
}

/** How long a healed link may take to show carrier on the node (IB ports train for seconds). */
const LINK_UP_TIMEOUT_MS = 60_000;

/** `ip link set SLAVE down`: the node's own admin action (not a cable pull). */
export class AdminDown extends LinkFault {
  readonly kind = 'admin-down';
  describe(): string {
    return `admin down (ip link set down) on ${this.target.node}/${this.target.ifname}`;
  }
  protected cut(lab: Lab): Promise<void> {
    const { node, ifname } = this.target;
    return this.j.act(lab, { type: 'link-up', node, ifname }, () => lab.node(node).run(['ip', 'link', 'set', 'dev', ifname, 'down']).then(() => undefined));
  }
}

/** A real carrier loss: QEMU set_link in the VM lab, the topology's commands on a real lab. */
export class CarrierLoss extends LinkFault {
  readonly kind = 'carrier-loss';
  describe(): string {
    return `carrier loss on ${this.target.node}/${this.target.ifname}`;
  }
  protected cut(lab: Lab): Promise<void> {
    const carrier = lab.carrier;
    if (!carrier) throw new Error('this lab cannot cut a carrier (no carrier control: add carrier commands to the topology)');
    const { node, ifname } = this.target;
    return this.j.act(lab, this.undo(), () => carrier.cut(node, ifname));
  }
  /** Journals this cut's undo without cutting: the caller cuts several links in one command. */
  async journalOnly(lab: Lab, t: number): Promise<void> {
    this.cutAt = t;
    await this.j.act(lab, this.undo(), () => Promise.resolve());
  }
  private undo(): HealSpec {
    return { type: 'carrier-restore', node: this.target.node, ifname: this.target.ifname };
  }
}

/** The switch port goes down; the node's carrier stays up: a silent path loss. */
export class SwitchPortDown extends LinkFault {
  readonly kind = 'switch-port-down';
  protected override readonly carrierFollows = false;
  describe(): string {
    return `switch port of ${this.target.node}/${this.target.ifname} down (carrier stays up)`;
  }
  protected cut(lab: Lab): Promise<void> {
    const sp = lab.switchPorts;
    if (!sp) throw new Error('this lab has no switch port control');
    const { node, ifname } = this.target;
    return this.j.act(lab, { type: 'switch-port-up', node, ifname }, () => sp.down(node, ifname));
  }
}

export type LinkFaultKind = 'carrier-loss' | 'admin-down' | 'switch-port-down';

export function linkFault(kind: LinkFaultKind, node: string, ifname: string): LinkFault {
  if (kind === 'carrier-loss') return new CarrierLoss(node, ifname);
  if (kind === 'admin-down') return new AdminDown(node, ifname);
  return new SwitchPortDown(node, ifname);
}

// ---- bond-level faults ----

/** Writes active_slave: the bond switches without any link failing. Nothing to heal. */
export class ForcedSwitch implements Fault {
  readonly kind = 'forced-switch';
  readonly target: FaultTarget & { bond: string };
  private readonly to: string;
  constructor(node: string, bond: string, to: string) {
    this.target = { node, bond };
    this.to = to;
  }
  describe(): string {
    return `forced switch of ${this.target.node}/${this.target.bond} to ${this.to} (active_slave)`;
  }
  async inject(ctx: FaultContext): Promise<number> {
    // No link event marks a forced switch: it starts when the write does. Stamped on the node just
    // before it, so the channel's set-up (a busy guest under emulation: seconds, once) is not
    // counted as the bond's time; waiting inside the write (the RTNL) still is.
    const issued = now();
    const r = await ctx.lab.node(this.target.node).run(['bash', '-c', 'echo "$EPOCHREALTIME"; echo "$2" > "$1"', 'switch', sysfsBond(this.target.bond, 'active_slave'), this.to]);
    const stamped = Number(r.stdout.trim().split('\n')[0]) * 1000;
    const clock = ctx.clock?.(this.target.node);
    const t = clock && Number.isFinite(stamped) && stamped > 0 ? Math.max(issued, nodeToController(clock, stamped)) : issued;
    ctx.record(event('inject', this, t));
    return t;
  }
  heal(): Promise<void> {
    return Promise.resolve();
  }
}

/** The node's active slave now: from the monitors when they run, else read from the bond of `slave`. */
async function activeSlaveOf(ctx: FaultContext, node: string, slave: string | undefined): Promise<string> {
  if (ctx.activeSlave) return ctx.activeSlave(node);
  if (!slave) return '';
  return (await ctx.lab.node(node).run(['cat', `/sys/class/net/${slave}/master/bonding/active_slave`], { timeoutMs: 15_000 })).stdout.trim();
}

/** Both slaves down for `downMs`, then back. */
export class BothDown implements Fault {
  readonly kind = 'both-down';
  readonly target: FaultTarget & { bond: string };
  private readonly slaves: LinkFault[];
  readonly downMs: number;
  constructor(node: string, bond: string, slaves: string[], downMs: number, opts: { kind?: LinkFaultKind } = {}) {
    this.target = { node, bond };
    this.slaves = slaves.map((s) => linkFault(opts.kind ?? 'carrier-loss', node, s));
    this.downMs = downMs;
  }
  /**
   * The order the links are cut in: the active slave last, as the node has it now. One QMP command
   * still reaches the guest as one carrier change per NIC, a few ms apart, and a miimon tick between
   * them failed the bond over to the backup first when the active went first (full run Z1 at
   * bd0bfbf: eth0 down at +34 ms, eth1 at +169 ms, ADDR_CHANGE in between). With the backups
   * already down there is nothing to fail over to. Read here, not given by the caller, so that
   * every outage gets the safe order.
   */
  private async cutOrder(ctx: FaultContext): Promise<LinkFault[]> {
    const active = await activeSlaveOf(ctx, this.target.node, this.slaves[0]?.target.ifname);
    return [...this.slaves.filter((s) => s.target.ifname !== active), ...this.slaves.filter((s) => s.target.ifname === active)];
  }
  describe(): string {
    return `both links of ${this.target.node}/${this.target.bond} down for ${this.downMs} ms`;
  }
  async inject(ctx: FaultContext): Promise<number> {
    const quiet: FaultContext = { ...ctx, record: () => undefined };
    const order = await this.cutOrder(ctx); // before the inject time: it is not part of the outage
    const t = now();
    const carrier = ctx.lab.carrier;
    const losses = order.filter((s): s is CarrierLoss => s instanceof CarrierLoss);
    if (carrier?.cutTogether && losses.length === this.slaves.length) {
      // One command for all links, so they go within a few ms (one by one they were seen 170 ms
      // apart); a tick between them fails the bond over to the second slave first (ADDR_CHANGE,
      // the ULP drops its connection), otherwise the connection outlives the outage — a different
      // ULP path each run. The active slave goes last (constructor), so even a tick between the
      // carrier changes finds no slave to fail over to.
      for (const s of losses) await s.journalOnly(ctx.lab, t);
      await carrier.cutTogether(this.target.node, losses.map((s) => s.target.ifname));
    } else {
      for (const s of order) await s.inject(quiet);
    }
    ctx.record(event('inject', this, t));
    return t;
  }
  /** Waits out the outage (from injection), then restores both links. */
  async heal(ctx: FaultContext, injectedAt?: number): Promise<void> {
    if (injectedAt !== undefined) await sleep(Math.max(0, injectedAt + this.downMs - now()));
    const t = now();
    const from = ctx.events?.()?.length ?? 0;
    const quiet: FaultContext = { ...ctx, record: () => undefined };
    // in order (the first slave back is the one the bond takes), then both links seen up
    for (const s of this.slaves) await s.restore(quiet);
    ctx.record(event('heal', this, t));
    await Promise.all(this.slaves.map((s) => s.linkUp(ctx, from)));
  }
}

/** The link goes down and up `count` times: down for half the period, up for the other half. */
export class Flap implements Fault {
  readonly kind = 'flap';
  readonly composite = true;
  readonly target: FaultTarget;
  readonly count: number;
  readonly periodMs: number;
  private link: LinkFault;
  private readonly follow: ((slave: string) => LinkFault) | undefined;
  /** when each down phase started (controller ms) */
  readonly downs: number[] = [];
  /**
   * `followActive`: each flap takes down the slave that is active when it starts (the test plan's
   * RF-01, "active slave alternated"), not the first one again — once the bond has moved, flapping
   * the backup exercises nothing (unless a primary pulls the bond back, which is RF-02's business).
   */
  constructor(link: LinkFault, count: number, periodMs: number, opts: { followActive?: (slave: string) => LinkFault } = {}) {
    this.link = link;
    this.follow = opts.followActive;
    this.target = link.target;
    this.count = count;
    this.periodMs = periodMs;
  }
  describe(): string {
    const what = this.follow ? `the active slave of ${this.target.node} (${this.link.describe()} first)` : this.link.describe();
    return `${this.count} flaps (${this.periodMs / 2} ms down / ${this.periodMs / 2} ms up) of ${what}`;
  }
  /**
   * Runs every flap to completion; the link is up when it returns. Down for half the period from
   * each injection; the next flap comes one period after the last one (the test plan's "every T"),
   * the heal, the wait for the node's carrier and the next slave's lookup all inside the up half.
   * Only when they take longer than it is the next flap late (the evidence has every injection time).
   */
  async inject(ctx: FaultContext): Promise<number> {
    const start = now();
    let last: number | undefined;
    for (let i = 0; i < this.count; i++) {
      if (i > 0 && this.follow && this.link.target.ifname) {
        const active = await activeSlaveOf(ctx, this.target.node, this.link.target.ifname);
        if (active && active !== this.link.target.ifname) this.link = this.follow(active);
      }
      if (last !== undefined) await sleep(Math.max(0, last + this.periodMs - now()));
      const link = this.link;
      const t = await (ctx.part ?? ((_f: Fault, run: () => Promise<number>) => run()))(link, () => link.inject(ctx));
      this.downs.push(t);
      last = t;
      await sleep(Math.max(0, t + this.periodMs / 2 - now()));
      await link.heal(ctx);
    }
    // the last flap's up half, too
    await sleep(Math.max(0, last! + this.periodMs - now()));
    return start;
  }
  heal(ctx: FaultContext): Promise<void> {
    return this.link.heal(ctx);
  }
}

/** Failback: the primary slave's link returns (it was cut earlier) and, with primary set and
 *  primary_reselect=always, the bond switches back to it. Healing is nothing: the link is up. */
export class Failback implements Fault {
  readonly kind = 'failback';
  readonly target: FaultTarget & { bond: string; ifname: string };
  constructor(node: string, bond: string, primary: string) {
    this.target = { node, bond, ifname: primary };
  }
  describe(): string {
    return `failback: ${this.target.node}/${this.target.ifname} (primary) returns`;
  }
  async inject(ctx: FaultContext): Promise<number> {
    const carrier = ctx.lab.carrier;
    if (!carrier) throw new Error('failback needs carrier control');
    const t = now();
    await carrier.restore(this.target.node, this.target.ifname);
    ctx.record(event('inject', this, t));
    return t;
  }
  heal(): Promise<void> {
    return Promise.resolve();
  }
}

/** Sets a bond's primary slave; returns how to put the previous one back. */
export async function setPrimary(lab: Lab, node: string, bond: string, primary: string): Promise<() => Promise<void>> {
  const n = lab.node(node);
  const previous = (await readBond(n, bond)).primary;
  const heal = { type: 'primary-restore' as const, node, bond, primary: previous, id: randomUUID() };
  remember(lab, heal);
  await n.writeFile(sysfsBond(bond, 'primary'), primary);
  return async () => {
    await runHeal(lab, heal);
    forget(lab, heal.id);
  };
}
