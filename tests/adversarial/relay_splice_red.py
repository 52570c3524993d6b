#!/usr/bin/env python3
"""A relayed peer against the relay's splice path (and, for comparison, its copy path): what a
side can make the server spend, or make the other side lose, with socket tricks that a plain
read(2) absorbs but splice(2) may not.
Usage: relay_splice_red.py MODE HOST PORT SERVER_PID
  MODE urgent: TCP urgent data (MSG_OOB) mid-stream. splice stops at the urgent mark: before
               the fix the session stalled with the server polling a readable socket in a busy
               loop, and a FIN after the mark passed on as an EOF that dropped the bytes after
               it. Now: the bytes a plain read gives arrive, the server spends no CPU waiting.
  MODE ends:   every way a spliced session ends gives its descriptors back (server flags:
               --relay-bytes 1M --relay-idle 2).
  MODE carry:  one session, 1 MiB each way intact (test_relay_splice_red.sh: small pipes).
Exit status = number of failures. Every loop is bounded in count and time."""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import relaylib  # noqa: E402
import tpauth  # noqa: E402

MODE, HOST, PORT, SERVER_PID = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
R = tpauth.Report(f"relay_splice_red {MODE}")
ok, bad, check = R.ok, R.bad, R.check
uid = tpauth.id_maker(os.getpid())
SRV = relaylib.server_pid(SERVER_PID)  # the server itself, measured


def pair():
    return relaylib.pair((HOST, PORT), uid("ha"), uid("hb"), bad)


def t_urgent():
    """Each urgent byte is followed by bytes that b reads before the next urgent byte is sent,
    so the relay has passed each mark: a plain read (the copy path) drops every urgent byte
    (a later one would otherwise turn an unread one back into data), and so must the splice."""
    p = pair()
    if not p:
        return
    a, b, _ = p
    a.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    a.sendall(b"before")
    got, how = relaylib.recv_for(b, 6, 5)
    check(got == b"before", f"bytes before any urgent data arrive ({got!r}, {how})")
    c0, t0, intact = relaylib.cpu_s(SRV), time.time(), True
    for urg, data in ((b"X", b"after the mark"), (b"Y", b"more"), (b"Z", b"last")):
        a.send(urg, socket.MSG_OOB)
        a.sendall(data)
        got, how = relaylib.recv_for(b, len(data), 3)
        if got != data:
            bad(f"urgent data mid-stream: the bytes after the mark arrive ({got!r} of {data!r}, "
                f"{how})")
            intact = False
            break
    if intact:
        ok("urgent data mid-stream (3 times): the bytes after each mark arrive, the urgent ones not")
    time.sleep(2.0)
    used, took = relaylib.cpu_s(SRV) - c0, time.time() - t0
    check(used < 0.2 * took, f"a side that sent urgent data costs the server no CPU "
          f"({used:.2f} s in {took:.1f} s)")
    if not intact:
        return
    # the mark, bytes, then the FIN at once: the bytes, then a clean EOF
    a.send(b"U", socket.MSG_OOB)
    a.send(b"tail")
    a.shutdown(socket.SHUT_WR)
    got, how = relaylib.recv_for(b, 5, 5)
    check(got == b"tail" and how == "eof",
          f"urgent data, bytes, FIN: the bytes, then EOF ({got!r}, {how})")
    b.sendall(b"back")
    got, how = relaylib.recv_for(a, 4, 5)
    check(got == b"back", f"the other direction still carries bytes ({got!r}, {how})")
    a.close()
    b.close()


def t_carry():
    """One session carries 1 MiB each way intact (whichever path the server chose)."""
    p = pair()
    if not p:
        return
    a, b, _ = p
    for x, y, name in ((a, b, "a -> b"), (b, a, "b -> a")):
        blob = os.urandom(1 << 20)
        x.sendall(blob)
        got, how = relaylib.recv_for(y, len(blob), 15)
        check(got == blob, f"{name}: 1 MiB intact ({len(got)} bytes, {how})")
    a.close()
    b.close()


def t_ends():
    """Every way a spliced session ends gives its sockets and pipes back (server run with
    --relay-bytes 1M --relay-idle 2): the byte cap, the idle cut, a reset from either side, a
    close from both, urgent data then a reset."""
    base = relaylib.nfds(SRV)
    ends = []

    def cap(a, b):
        a.sendall(os.urandom(1 << 19))
        try:
            a.sendall(os.urandom(1 << 20))
        except OSError:
            pass

    def rst(x):
        x.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        x.sendall(b"bye")

    def closes(a, b):
        a.shutdown(socket.SHUT_WR)
        b.shutdown(socket.SHUT_WR)

    def urg_rst(a, b):
        a.send(b"U", socket.MSG_OOB)
        rst(a)

    for name, how in (("byte cap", cap), ("idle cut", None),
                      ("reset by a", lambda a, b: rst(a)), ("reset by b", lambda a, b: rst(b)),
                      ("both close", closes), ("urgent data, then a reset", urg_rst)):
        p = pair()
        if not p:
            return
        a, b, ctl = p
        if how:
            how(a, b)
        ends.append((name, a, b, ctl))
        if name in ("reset by a", "urgent data, then a reset"):
            a.close()
        if name == "reset by b":
            b.close()
    time.sleep(3.5)  # past the idle cut
    mid = relaylib.nfds(SRV)
    for name, a, b, ctl in ends:
        for x in (a, b):
            try:
                x.close()
            except OSError:
                pass
    time.sleep(0.5)
    # the control connections of the 14 peers stay open until here
    check(mid <= base + 2 * len(ends) + 2,
          f"{len(ends)} ended sessions hold no socket or pipe ({base} -> {mid} fds, "
          f"{2 * len(ends)} of them the peers' control connections)")
    for name, a, b, ctl in ends:
        for c in ctl:
            c.s.close()
    time.sleep(0.5)
    n = relaylib.nfds(SRV)
    check(n <= base + 2, f"then every descriptor is back ({base} -> {n})")


TESTS = {"urgent": [t_urgent], "carry": [t_carry], "ends": [t_ends]}
for t in TESTS[MODE]:
    try:
        t()
    except Exception as e:  # a crash of one check must not hide the others
        bad(f"{t.__name__}: {type(e).__name__}: {e}")
sys.exit(R.status())
