#!/usr/bin/env python3
"""RDS traffic with end-to-end verification (rdma-failover's own tool; rds-tools is not in Debian).

Each side binds an AF_RDS socket to its bond address with the transport forced to IB/RDMA
(SO_RDS_TRANSPORT), sends COUNT sequence-numbered messages to the peer at RATE/s, and receives the
peer's. Every message carries a BLAKE2b digest of its payload. The receiver counts unique, duplicate,
reordered and corrupt messages. A send that the kernel refuses (ENOBUFS while the connection is down)
is retried with the same sequence number: a message is never skipped on purpose, so "lost" is real.

Progress: one JSON line per PROGRESS_MS on stdout; a final line with "final": true.

With --until-stop, COUNT is a minimum: the tool goes on sending until it has sent COUNT and the
harness wrote "stop" on stdin, then reports "stopped" with its total; the harness relays that total to
the peer as "expect N". A test's steps may take longer than planned (a loaded machine), and traffic
that ran out before the test's last "delivers again" step would fail a good failover.
"""
import argparse
import errno
import hashlib
import json
import os
import select
import signal
import socket
import struct
import sys
import time

AF_RDS = 21
SOL_RDS = 276
SO_RDS_TRANSPORT = 8
RDS_TRANS_IB = 0
RDS_TRANS_TCP = 2
MAGIC = b"RFDS"
HEADER = struct.Struct("!4sQQH16s")  # magic, run id, seq, payload len, digest


def now():
    return time.time()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--local", required=True, help="own bond IP")
    ap.add_argument("--peer", required=True, help="peer bond IP")
    ap.add_argument("--port", type=int, default=18634)
    ap.add_argument("--count", type=int, default=1000, help="messages to send")
    ap.add_argument("--rate", type=float, default=100.0, help="messages per second")
    ap.add_argument("--size", type=int, default=6000, help="payload bytes")
    ap.add_argument("--run-id", type=int, default=1)
    ap.add_argument("--drain", type=float, default=30.0, help="seconds to keep receiving after sending")
    ap.add_argument("--expect", type=int, default=None, help="messages the peer sends (stop early when all arrived)")
    ap.add_argument("--progress-ms", type=int, default=100)
    ap.add_argument("--transport", choices=["ib", "tcp"], default="ib")
    ap.add_argument("--wait-go", action="store_true", help="after bind, print ready and wait for a 'go' line on stdin")
    ap.add_argument("--until-stop", action="store_true", help="send past COUNT until a 'stop' line on stdin; 'expect N' lines set --expect")
    ap.add_argument("--corrupt-every", type=int, default=0, help="TEST HOOK: flip a payload byte of every Nth message after hashing")
    a = ap.parse_args()

    # Control lines from the harness, read unbuffered from fd 0 (a buffered readline could swallow
    # the lines after "go").
    ctl = {"buf": b"", "eof": False}

    def control_line(block=False):
        while b"\n" not in ctl["buf"] and not ctl["eof"]:
            if not block and not select.select([0], [], [], 0)[0]:
                return ""
            chunk = os.read(0, 4096)
            if not chunk:
                ctl["eof"] = True
            ctl["buf"] += chunk
        line, _, rest = ctl["buf"].partition(b"\n")
        ctl["buf"] = rest
        return line.decode(errors="replace").strip()

    s = socket.socket(AF_RDS, socket.SOCK_SEQPACKET, 0)
    # The transport must be chosen before bind; IB means RDS over RDMA (rds_rdma).
    s.setsockopt(SOL_RDS, SO_RDS_TRANSPORT, RDS_TRANS_IB if a.transport == "ib" else RDS_TRANS_TCP)
    s.bind((a.local, a.port))
    s.setblocking(False)
    if a.wait_go:
        # RDS drops messages for a port nobody has bound yet: the harness says "go" once both
        # sides are bound, so no message is lost before the test starts.
        sys.stdout.write(json.dumps({"ready": True, "t": now()}) + "\n")
        sys.stdout.flush()
        if not control_line(block=True).startswith("go"):
            sys.exit("no go from the harness")

    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__("now", True))
    signal.signal(signal.SIGINT, lambda *_: stop.__setitem__("now", True))

    seen = bytearray()
    sent_at = []  # send time of each seq (epoch s), reported at the end for lost-message forensics
    st = {
        "sent": 0, "recv": 0, "unique": 0, "dup": 0, "reorder": 0, "corrupt": 0, "foreign": 0,
        "max_seq": -1, "send_retries": 0, "send_errors": {}, "blocked_since": None,
        "first_send": None, "last_send": None, "last_recv": None,
    }
    interval = 1.0 / a.rate if a.rate > 0 else 0.0
    next_send = now()
    next_progress = now()
    done_sending_at = None
    pending = None  # the message being (re)tried
    stop_asked = not a.until_stop
    stopped_reported = False

    def make(seq):
        payload = os.urandom(a.size)
        digest = hashlib.blake2b(payload, digest_size=16).digest()
        if a.corrupt_every and seq % a.corrupt_every == a.corrupt_every - 1:
            b = bytearray(payload)
            b[len(b) // 2] ^= 0xFF
            payload = bytes(b)
        return HEADER.pack(MAGIC, a.run_id, seq, len(payload), digest) + payload

    def sending():
        return st["sent"] < a.count or not stop_asked

    def progress(final=False):
        out = {k: v for k, v in st.items() if k != "blocked_since"}
        out["t"] = now()
        if a.until_stop and not sending():
            out["stopped"] = True
        out["blocked_ms"] = int((now() - st["blocked_since"]) * 1000) if st["blocked_since"] else 0
        if final:
            out["final"] = True
            # Gaps below the highest seq seen (the harness adds the tail from the peer's count).
            gaps, start = [], None
            for i in range(max(0, st["max_seq"] + 1)):
                if i < len(seen) and seen[i]:
                    if start is not None:
                        gaps.append([start, i - 1])
                        start = None
                elif start is None:
                    start = i
            if start is not None:
                gaps.append([start, st["max_seq"]])
            out["missing_ranges"] = gaps[:64]
            out["sent_at"] = [round(x, 4) for x in sent_at]
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()

    def receive():
        while True:
            try:
                data, addr = s.recvfrom(65536)
            except BlockingIOError:
                return
            except OSError as e:
                st["send_errors"]["recv_" + errno.errorcode.get(e.errno, str(e.errno))] = st["send_errors"].get("recv_" + errno.errorcode.get(e.errno, str(e.errno)), 0) + 1
                return
            st["recv"] += 1
            st["last_recv"] = now()
            if len(data) < HEADER.size:
                st["foreign"] += 1
                continue
            magic, run, seq, plen, digest = HEADER.unpack_from(data)
            payload = data[HEADER.size:]
            if magic != MAGIC or run != a.run_id:
                st["foreign"] += 1
                continue
            if plen != len(payload) or hashlib.blake2b(payload, digest_size=16).digest() != digest:
                st["corrupt"] += 1
                continue
            if seq >= len(seen):
                seen.extend(b"\0" * (seq + 1 - len(seen) + 1024))
            if seen[seq]:
                st["dup"] += 1
                continue
            seen[seq] = 1
            st["unique"] += 1
            if seq < st["max_seq"]:
                st["reorder"] += 1
            st["max_seq"] = max(st["max_seq"], seq)

    while not stop["now"]:
        t = now()
        if a.until_stop and not ctl["eof"]:
            line = control_line()
            while line:
                if line == "stop":
                    stop_asked = True
                elif line.startswith("expect "):
                    a.expect = int(line.split()[1])
                line = control_line()
        if sending() and t >= next_send:
            if pending is None:
                pending = make(st["sent"])
            try:
                s.sendto(pending, (a.peer, a.port))
                if st["first_send"] is None:
                    st["first_send"] = t
                st["last_send"] = t
                sent_at.append(t)
                st["sent"] += 1
                pending = None
                st["blocked_since"] = None
                next_send = max(next_send + interval, t - 1.0)
            except OSError as e:
                # ENOBUFS: the send queue is full (connection down or congested): retry the same seq.
                name = errno.errorcode.get(e.errno, str(e.errno))
                st["send_errors"][name] = st["send_errors"].get(name, 0) + 1
                st["send_retries"] += 1
                if st["blocked_since"] is None:
                    st["blocked_since"] = t
                next_send = t + 0.005
        if not sending() and done_sending_at is None:
            done_sending_at = t
        if a.until_stop and done_sending_at is not None and not stopped_reported:
            progress()  # the harness waits for both totals before it relays them
            stopped_reported = True
        receive()
        if t >= next_progress:
            progress()
            next_progress = t + a.progress_ms / 1000.0
        if done_sending_at is not None:
            if a.expect is not None and st["unique"] >= a.expect:
                break
            if t - done_sending_at > a.drain:
                break
        wait = 0.05
        if sending():
            wait = max(0.0, min(wait, next_send - now()))
        select.select([s] + ([0] if a.until_stop and not ctl["eof"] else []), [], [], wait)
    receive()
    progress(final=True)


if __name__ == "__main__":
    main()
