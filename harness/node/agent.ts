// The command agent: one long-lived process per SSH connection that starts the harness's short
// commands itself. A command on a channel of its own costs an emulated guest ~180 ms (sshd forks a
// session, root's login shell starts, the wrapper's shell starts, then the command); through the
// agent it costs one fork and one exec (~40 ms). bench/transport.ts measures both, side by side.
//
// The agent is a Perl script using only perl-base (Essential on Debian, present on any lab that
// runs iscsiadm or nfs-utils). Where it cannot start, commands go on channels as before.
//
// Each command runs exactly as on a channel: argv exec'd with no shell, in a session of its own
// (setsid, like sshd), stdin /dev/null, stdout and stderr separate; it is stopped the same way
// (signals to its process group). The agent reports its PID and start time first, its output as it
// comes, and its exit (code or signal) once both pipes reach EOF — as sshd closes a channel.
//
// Protocol on the agent's stdin:   R <id> <len>\n<argv, NUL-separated, len bytes>
//                         stdout:  READY <pid>\n, then per command
//                                  P <id> <pid> <starttime>\n | O|E <id> <len>\n<bytes> | X <id> <code> <signal>\n
import { constants } from 'node:os';

export const AGENT_SCRIPT = String.raw`
use strict; use warnings; use POSIX (); use Fcntl ();
binmode STDIN; binmode STDOUT; $| = 1;
# A child's exit wakes select() through a self-pipe: Perl runs the handler at its next safe point,
# so an exit that lands just before select() still makes the pipe readable (no lost wake-up).
pipe(my $wr, my $ww) or die "rf-agent: pipe: $!";
for ($wr, $ww) { fcntl($_, Fcntl::F_SETFL(), fcntl($_, Fcntl::F_GETFL(), 0) | Fcntl::O_NONBLOCK()) }
$SIG{CHLD} = sub { syswrite $ww, 'c' };
my (%cmd, %pipe, %status);
sub say_ { my $s = join '', @_; while (length $s) { my $n = syswrite STDOUT, $s; if (!defined $n) { next if $!{EINTR} || $!{EAGAIN}; exit 0 } substr($s, 0, $n) = '' } }
sub start {
  my ($id, @argv) = @_;
  my ($or, $ow, $er, $ew);
  if (!pipe($or, $ow) || !pipe($er, $ew)) { say_("E $id " . length("rf-agent: pipe: $!\n") . "\nrf-agent: pipe: $!\n", "X $id 126 0\n"); return }
  my $pid = fork;
  if (!defined $pid) { my $m = "rf-agent: fork: $!\n"; say_("E $id " . length($m) . "\n$m", "X $id 126 0\n"); return }
  if ($pid == 0) {
    POSIX::setsid();
    $SIG{CHLD} = 'DEFAULT';
    open STDIN, '<', '/dev/null'; open STDOUT, '>&', $ow; open STDERR, '>&', $ew;
    { no warnings; exec { $argv[0] } @argv; }
    my $missing = $!{ENOENT};   # as a shell says it, with its exit codes: 127 not found, 126 not runnable
    print STDERR "rf-agent: $argv[0]: ", ($missing ? 'command not found' : "$!"), "\n"; POSIX::_exit($missing ? 127 : 126);
  }
  close $ow; close $ew;
  my $st = 0;
  if (open my $f, '<', "/proc/$pid/stat") { my $l = <$f> // ''; $l =~ s/^.*\) //; $st = (split ' ', $l)[19] // 0 }
  say_("P $id $pid $st\n");
  $cmd{$id} = { pid => $pid, open => 2 };
  $pipe{fileno $or} = [$id, 'O', $or]; $pipe{fileno $er} = [$id, 'E', $er];
}
sub finish {
  for my $id (keys %cmd) {
    my $c = $cmd{$id};
    next if $c->{open} || !exists $status{$c->{pid}};
    my $w = delete $status{$c->{pid}};
    my ($code, $sig) = POSIX::WIFSIGNALED($w) ? (-1, POSIX::WTERMSIG($w)) : (POSIX::WEXITSTATUS($w), 0);
    say_("X $id $code $sig\n");
    delete $cmd{$id};
  }
}
say_("READY $$\n");
my $in = '';
for (;;) {
  my $rin = ''; vec($rin, 0, 1) = 1; vec($rin, fileno $wr, 1) = 1; vec($rin, $_, 1) = 1 for keys %pipe;
  my $waiting = grep { !$_->{open} } values %cmd;
  my $n = select(my $rout = $rin, undef, undef, $waiting ? 1 : undef);
  sysread $wr, my $drain, 4096 if $n > 0 && vec($rout, fileno $wr, 1);
  while ((my $p = waitpid(-1, POSIX::WNOHANG())) > 0) { $status{$p} = $? }
  if ($n > 0) {
    for my $fd (keys %pipe) {
      next unless vec($rout, $fd, 1);
      my ($id, $kind, $fh) = @{$pipe{$fd}};
      my $got = sysread $fh, my $buf, 65536;
      next if !defined $got && ($!{EINTR} || $!{EAGAIN});
      if ($got) { say_("$kind $id $got\n", $buf); next }
      close $fh; delete $pipe{$fd}; $cmd{$id}{open}--;
    }
    if (vec($rout, 0, 1)) {
      my $got = sysread STDIN, $in, 65536, length $in;
      if (defined $got && $got == 0) { exit 0 }
      while ($in =~ /\AR (\d+) (\d+)\n/ && length($in) >= length($&) + $2) {
        my ($id, $len, $hl) = ($1, $2, length $&);
        my $args = substr($in, $hl, $len); substr($in, 0, $hl + $len) = '';
        start($id, split /\0/, $args, -1);
      }
    }
  }
  finish();
}
`;

export interface AgentSink {
  started(pid: number, startTime: string): void;
  out(chunk: Buffer): void;
  err(chunk: Buffer): void;
  exit(code: number | null, signal: string | null): void;
}

/** The request that starts argv as command `id`. Refuses argv the exec(2) interface cannot carry. */
export function agentRequest(id: number, argv: readonly string[]): Buffer {
  if (!argv.length) throw new Error('empty argv');
  for (const a of argv) if (a.includes('\0')) throw new Error('an argument contains a NUL byte');
  const payload = Buffer.from(argv.join('\0'), 'utf8');
  return Buffer.concat([Buffer.from(`R ${id} ${payload.length}\n`), payload]);
}

const SIGNAL_NAME = new Map<number, string>(Object.entries(constants.signals).map(([name, n]) => [n, name]));

/**
 * Reads the agent's stdout: frames to the sinks of the commands they belong to. A malformed frame
 * means the stream cannot be trusted any more: `broken` is called and nothing more is read.
 */
export class AgentReader {
  private buf: Buffer = Buffer.alloc(0);
  private dead = false;
  private readonly sink: (id: number) => AgentSink | undefined;
  private readonly onReady: (pid: number) => void;
  private readonly broken: (why: string) => void;
  constructor(sink: (id: number) => AgentSink | undefined, onReady: (pid: number) => void, broken: (why: string) => void) {
    this.sink = sink;
    this.onReady = onReady;
    this.broken = broken;
  }

  push(chunk: Buffer): void {
    if (this.dead) return;
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    for (;;) {
      const nl = this.buf.indexOf(10);
      if (nl < 0) {
        if (this.buf.length > 256) this.fail(`no frame header in ${this.buf.length} bytes`);
        return;
      }
      const head = this.buf.subarray(0, nl).toString('latin1');
      const m = /^(?:(READY) (\d+)|(P) (\d+) (\d+) (\d+)|([OE]) (\d+) (\d+)|(X) (\d+) (-?\d+) (\d+))$/.exec(head);
      if (!m) return this.fail(`bad frame header ${JSON.stringify(head.slice(0, 80))}`);
      if (m[1]) {
        this.buf = this.buf.subarray(nl + 1);
        this.onReady(Number(m[2]));
      } else if (m[3]) {
        this.buf = this.buf.subarray(nl + 1);
        this.sink(Number(m[4]))?.started(Number(m[5]), m[6]!);
      } else if (m[7]) {
        const len = Number(m[9]);
        if (this.buf.length < nl + 1 + len) return; // the rest of the chunk has not come yet
        const data = Buffer.from(this.buf.subarray(nl + 1, nl + 1 + len));
        this.buf = this.buf.subarray(nl + 1 + len);
        const s = this.sink(Number(m[8]));
        if (m[7] === 'O') s?.out(data);
        else s?.err(data);
      } else {
        this.buf = this.buf.subarray(nl + 1);
        const code = Number(m[12]);
        const sig = Number(m[13]);
        this.sink(Number(m[11]))?.exit(code >= 0 ? code : null, sig ? (SIGNAL_NAME.get(sig) ?? `SIG${sig}`) : null);
      }
    }
  }

  private fail(why: string): void {
    this.dead = true;
    this.broken(why);
  }
}

/** What the agent runs on: an SSH channel (or anything with its shape, for tests). */
export interface AgentPipe {
  write(data: Buffer): unknown;
  on(event: 'data', f: (c: Buffer) => void): unknown;
  on(event: 'close', f: () => void): unknown;
  stderr: { on(event: 'data', f: (c: Buffer) => void): unknown };
}

export interface AgentCommand extends AgentSink {
  /** The agent went away before the command's exit came: its outcome is unknown. */
  lost(why: string): void;
}

/** One running agent: starts commands, routes their frames, fails them all if it ends. */
export class Agent<C = unknown> {
  private nextId = 1;
  private readonly commands = new Map<number, AgentCommand>();
  private readonly reader: AgentReader;
  private endedWhy: string | undefined;
  private stderrTail = '';
  pid: number | undefined;
  readonly readyPromise: Promise<void>;

  private readonly pipe: AgentPipe;
  /** the connection it runs on: a lost connection fails its commands like any other */
  readonly client: C;
  constructor(pipe: AgentPipe, client: C, onEnd: (why: string) => void) {
    this.pipe = pipe;
    this.client = client;
    let ready!: () => void;
    let notReady!: (e: Error) => void;
    this.readyPromise = new Promise<void>((res, rej) => {
      ready = res;
      notReady = rej;
    });
    const end = (why: string) => {
      if (this.endedWhy) return;
      this.endedWhy = why;
      notReady(new Error(why));
      for (const [id, c] of [...this.commands]) {
        this.commands.delete(id);
        c.lost(why);
      }
      onEnd(why);
    };
    this.reader = new AgentReader(
      (id) => this.commands.get(id),
      (pid) => {
        this.pid = pid;
        ready();
      },
      (why) => end(`command agent sent a malformed frame (${why})`),
    );
    pipe.on('data', (c) => this.reader.push(c));
    pipe.stderr.on('data', (c) => (this.stderrTail = (this.stderrTail + c.toString('utf8')).slice(-500)));
    pipe.on('close', () => {
      // eslint-disable-next-line no-control-regex -- the wrapper's pgid marker line
      const err = this.stderrTail.replace(/^\x01rf-pgid[^\n]*\n/, '').trim();
      end(`command agent ended${err ? `: ${err}` : ''}`);
    });
  }

  /** Starts argv; returns the function that forgets it (its later frames are dropped). */
  launch(argv: readonly string[], cmd: AgentCommand): () => void {
    if (this.endedWhy) {
      cmd.lost(this.endedWhy);
      return () => undefined;
    }
    const id = this.nextId++;
    this.commands.set(id, {
      ...cmd,
      exit: (code, signal) => {
        this.commands.delete(id);
        cmd.exit(code, signal);
      },
    });
    this.pipe.write(agentRequest(id, argv));
    return () => this.commands.delete(id);
  }
}
