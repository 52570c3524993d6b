#!/usr/bin/env python3
"""The relay's splice path (and, where said, its copy path) against raw sockets on loopback:
bytes intact both ways, half-close either way, the byte and rate caps, a receiver that never
reads, the idle cut, a peer that resets mid-stream, descriptors given back, and what a hostile
client can make the server spend (CPU on a stalled session, descriptors).
Usage: relay_splice.py MODE HOST PORT SERVER_PID
  MODE data:    any server flags (bytes, half-close, reset, backpressure, stall CPU, fds)
  MODE bytes:   server run with --relay-bytes 1M
  MODE rate:    server run with --relay-rate 1M
  MODE idle:    server run with --relay-idle 2
  MODE fdlimit: server run with a low RLIMIT_NOFILE and --relay-max 40
  MODE hostile: server run with --relay-max 5 (tests/adversarial/test_relay_splice_hostile.sh)
  MODE bench:   $RELAY_BENCH_SIZE bytes a -> b through the relay, prints the seconds (bench/run
                relay); with RELAY_BENCH_PLAIN=P1,P2 through a socat relay on those ports
Exit status = number of failures. Every loop is bounded in count and time."""
import hashlib
import os
import random
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relaylib  # noqa: E402
import tpauth  # noqa: E402

MODE, HOST, PORT, SERVER_PID = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
# the server runs with --relay-copy (tests/integration/lib.sh, the *.copy tests)
COPY_PATH = os.environ.get("TCPUNCH_TEST_RELAY_COPY") == "1"
R = tpauth.Report(f"relay_splice {MODE}")
ok, bad, check = R.ok, R.bad, R.check
uid = tpauth.id_maker(os.getpid())
SRV = relaylib.server_pid(SERVER_PID)  # the server itself, measured


def pair(rcvbuf=0, sndbuf=0):
    return relaylib.pair((HOST, PORT), uid("sa"), uid("sb"), bad, rcvbuf, sndbuf)


def end_of(s, timeout=10.0):
    """How the stream ends after what is left: (how, bytes skipped)."""
    n, end = 0, time.time() + timeout
    while time.time() < end:
        s.settimeout(max(0.05, end - time.time()))
        try:
            d = s.recv(1 << 20)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return "reset", n
        if not d:
            return "eof", n
        n += len(d)
    return "timeout", n


def sender(s, data, done):
    try:
        s.sendall(data)
        done.append("sent")
    except OSError as e:
        done.append(type(e).__name__)


# ---------------------------------------------------------------- data

def t_both_ways():
    p = pair()
    if not p:
        return
    a, b, _ = p
    rnd = random.Random(17)
    da, db = rnd.randbytes(24 << 20), rnd.randbytes(24 << 20)
    done_a, done_b = [], []
    ta = threading.Thread(target=sender, args=(a, da, done_a))
    tb = threading.Thread(target=sender, args=(b, db, done_b))
    ta.start()
    tb.start()
    got = {}
    tr = threading.Thread(target=lambda: got.setdefault("a", relaylib.recv_for(a, len(db), 60)))
    tr.start()
    got["b"] = relaylib.recv_for(b, len(da), 60)
    tr.join(65)
    ta.join(5)
    tb.join(5)
    check(hashlib.sha256(got["b"][0]).digest() == hashlib.sha256(da).digest(),
          f"24 MiB of random bytes a -> b intact ({len(got['b'][0])} bytes)")
    check("a" in got and got["a"][0] == db,
          f"24 MiB b -> a intact, at the same time ({len(got.get('a', (b''),)[0])} bytes)")
    a.close()
    b.close()


def t_half_close(first):
    """first ('a' or 'b') ends its direction with data still in flight; the other goes on."""
    p = pair()
    if not p:
        return
    x, y, _ = p
    if first == "b":
        x, y = y, x
    blob = os.urandom(3 << 20)
    done = []
    th = threading.Thread(target=lambda: (sender(x, blob, done), x.shutdown(socket.SHUT_WR)))
    th.start()
    got, how = relaylib.recv_for(y, len(blob) + 1, 30)
    th.join(10)
    check(got == blob and how == "eof",
          f"{first} -> other: 3 MiB then {first}'s FIN as a clean EOF ({len(got)} bytes, {how})")
    back = os.urandom(2 << 20)
    th = threading.Thread(target=lambda: (sender(y, back, done), y.shutdown(socket.SHUT_WR)))
    th.start()
    got, how = relaylib.recv_for(x, len(back) + 1, 30)
    th.join(10)
    check(got == back and how == "eof",
          f"after {first}'s FIN the other direction carries 2 MiB and its own FIN ({len(got)}, {how})")
    x.close()
    y.close()


def t_reset_mid_stream():
    p = pair()
    if not p:
        return
    a, b, _ = p
    a.sendall(os.urandom(1 << 20))
    time.sleep(0.3)
    a.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    a.close()  # RST, with b not reading: the relay has bytes in its pipe
    how, n = end_of(b, 10)
    check(how == "reset", f"a peer's reset mid-stream reaches the other as a reset, not EOF ({how}, {n})")
    b.close()


def t_stalled(secs=3.0):
    """b never reads; a keeps sending (bulk, then tiny segments): a blocks, the server's RSS
    stays flat and it burns no CPU waiting (no poll loop on a socket that stays readable)."""
    p = pair(rcvbuf=65536, sndbuf=65536)
    if not p:
        return
    a, b, _ = p
    a.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    a.setblocking(False)
    rss0, sent, chunk = tpauth.rss_kib(SRV), 0, b"s" * 65536
    end = time.time() + 4
    while sent < (256 << 20) and time.time() < end:
        try:
            sent += a.send(chunk)
        except BlockingIOError:
            time.sleep(0.01)
    # what the kernel's socket buffers hold on the way (tcp_rmem autotunes up to 32 MiB here), not 256
    check(sent < 64 << 20, f"the sender blocks when the receiver never reads ({sent >> 10} KiB taken)")
    # now single bytes, each its own segment: a pipe holds buffers, not bytes
    c0, t0, tiny = relaylib.cpu_s(SRV), time.time(), 0
    while time.time() - t0 < secs and tiny < 200000:
        try:
            tiny += a.send(b"t")
        except BlockingIOError:
            time.sleep(0.001)
    time.sleep(0.5)
    used, took = relaylib.cpu_s(SRV) - c0, time.time() - t0
    grew = tpauth.rss_kib(SRV) - rss0
    check(grew < 16384, f"the server's RSS stays flat (grew {grew} KiB)")
    check(used < 0.25 * took, f"a stalled session costs the server no CPU ({used:.2f} s in {took:.1f} s)")
    a.setblocking(True)
    a.close()
    b.close()


def t_fds_back(base):
    time.sleep(1.0)
    n = relaylib.nfds(SRV)
    check(n <= base + 2, f"every session's sockets and pipes are closed at its end ({base} -> {n} fds)")


# ---------------------------------------------------------------- limits

def t_bytes_cap():
    p = pair()
    if not p:
        return
    a, b, _ = p
    done = []
    th = threading.Thread(target=sender, args=(a, os.urandom(3 << 20), done))
    th.start()
    got, how = relaylib.recv_for(b, 3 << 20, 15)
    th.join(15)
    check(how == "reset", f"--relay-bytes 1M: the reader sees a reset ({how})")
    check(len(got) <= 1 << 20, f"no byte past the cap gets through ({len(got)} of at most {1 << 20})")
    check(len(got) > 0, f"bytes under the cap do ({len(got)})")
    a.close()
    b.close()


def t_rate():
    p = pair()
    if not p:
        return
    a, b, _ = p
    total, done = 4 << 20, []
    th = threading.Thread(target=sender, args=(a, b"r" * total, done))
    t0 = time.time()
    th.start()
    marks, got = [], 0
    while got < total and time.time() - t0 < 15:
        d, how = relaylib.recv_for(b, min(1 << 18, total - got), 15 - (time.time() - t0))
        got += len(d)
        marks.append((time.time() - t0, got))
        if how in ("eof", "reset", "timeout"):
            break
    took = time.time() - t0
    th.join(10)
    check(got == total, f"--relay-rate 1M: all 4 MiB arrive ({got})")
    # 4 MiB at 1 MiB/s: about 4 s; never much faster, loosely bounded above on a busy machine
    check(3.0 <= took <= 9.0, f"--relay-rate 1M holds the rate: 4 MiB in {took:.1f} s")
    half = next((t for t, n in marks if n >= total // 2), None)
    check(half is not None and half >= 1.4, f"the first 2 MiB take about 2 s too ({half})")
    a.close()
    b.close()


def t_idle():
    p = pair()
    if not p:
        return
    a, b, _ = p
    for _ in range(6):  # a byte every 0.5 s for 3 s: never idle for 2 s
        a.sendall(b"k")
        d, how = relaylib.recv_for(b, 1, 3)
        if d != b"k":
            bad(f"a trickle is forwarded ({d!r}, {how})")
            return
        time.sleep(0.5)
    ok("a byte every 0.5 s keeps a --relay-idle 2 session for 3 s")
    t0 = time.time()
    how, _ = end_of(b, 8)
    took = time.time() - t0
    check(how == "reset" and 1.0 <= took <= 5, f"then 2 s without a byte: cut, a reset ({how}, {took:.1f} s)")
    a.close()
    b.close()


def t_fdlimit():
    """More sessions than the descriptors allow pipes for: the later ones copy (the server keeps
    a reserve for accepts), all carry their bytes, and a new peer can still register."""
    sessions = []
    for i in range(14):
        p = pair()
        if not p:
            return
        sessions.append(p)
    for i, (a, b, _) in enumerate(sessions):
        blob = os.urandom(65536 + i)
        a.sendall(blob)
        got, how = relaylib.recv_for(b, len(blob), 10)
        if got != blob:
            bad(f"session {i} under a tight descriptor limit: bytes intact ({len(got)}, {how})")
            return
    ok("14 sessions under a tight descriptor limit carry their bytes intact")
    c = relaylib.register((HOST, PORT), uid("late"))
    check(c.welcome and c.welcome.get("type") == "welcome",
          f"a new peer still registers ({c.welcome})")
    for a, b, ctl in sessions:
        a.close()
        b.close()


# ---------------------------------------------------------------- hostile

def t_hostile(nsess=4):
    """What a hostile client holding --relay-max 4 spliced sessions makes the server spend:
    descriptors (6 a session, none kept after), CPU while every receiver stalls and every
    sender dribbles single bytes (a pipe holds buffers, not bytes), and after resets mid-stream."""
    base = relaylib.nfds(SRV)
    ss = [pair(rcvbuf=4096, sndbuf=4096) for _ in range(nsess)]
    if not all(ss):
        return
    held = relaylib.nfds(SRV) - base
    # each session: 2 control connections, 2 relay sockets, 2 pipes of 2 ends (and a moment's
    # slack: a connection the server is just closing)
    check(held <= nsess * 8 + 2, f"{nsess} spliced sessions hold {held} descriptors (at most {nsess * 8} + 2)")
    for a, b, _ in ss:
        a.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        a.setblocking(False)
    c0, t0, sent = relaylib.cpu_s(SRV), time.time(), 0
    # each 1-byte segment fills a buffer of the server's send queue towards b (thousands of
    # them), then a pipe slot: the pipe is full with a few bytes in it, while a stays readable
    while time.time() - t0 < 4 and sent < 400000:
        for a, b, _ in ss:
            try:
                sent += a.send(b"d")
            except BlockingIOError:
                pass
    used = relaylib.cpu_s(SRV) - c0
    # the work per segment is real (a wakeup, a splice in, one out), as on the copy path: bound
    # it per send, loosely (ASan, a shared machine)
    check(used < max(0.5, sent * 100e-6),
          f"dribbling into {nsess} stalled sessions: {used:.2f} s of server CPU for {sent} sends")
    # then nothing is sent: the sockets may stay readable with bytes the full pipes cannot take,
    # and a relay polling them for reading would spin now
    time.sleep(0.3)
    c1, t1 = relaylib.cpu_s(SRV), time.time()
    time.sleep(2.0)
    idle, took = relaylib.cpu_s(SRV) - c1, time.time() - t1
    check(idle < 0.1 * took, f"stalled sessions cost no CPU once the dribble stops ({idle:.2f} s in {took:.1f} s)")
    for i, (a, b, _) in enumerate(ss):  # resets from either side, with bytes in the pipes
        x = a if i % 2 else b
        x.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        x.close()
    for i, (a, b, _) in enumerate(ss):
        y = b if i % 2 else a
        y.setblocking(True)
        how, _ = end_of(y, 10)
        if COPY_PATH and how == "eof":
            # known, copy path only (the fallback): about 1 run in 12 under load, a reset from
            # the sender of a session whose receiver stalled is read by the server as an EOF
            # and passed on as a FIN (tests/adversarial/AUDIT.md, "Phase 12", open). tcpunch
            # peers still see the cut: the stream lacks its final record
            print(f"KNOWN [relay_splice hostile] session {i}: copy path passed the reset on as a FIN")
            continue
        check(how == "reset", f"session {i}: the reset reaches the other side as one ({how})")
        y.close()
    ss.clear()
    time.sleep(1.0)
    n = relaylib.nfds(SRV)
    check(n <= base + 2, f"after the resets every socket and pipe is closed ({base} -> {n} fds)")
    p = pair()  # and the relay still splices a fresh session
    if p:
        p[0].sendall(b"after")
        check(relaylib.recv_for(p[1], 5, 5)[0] == b"after", "a fresh session still carries bytes")


# ---------------------------------------------------------------- bench

def plain_pair(spec):
    """For a socat relay (bench/run): "P1,P2", the sender dials P1 first, then the receiver P2
    (socat listens there once P1 has its client); retried for 5 s."""
    p1, p2 = (int(x) for x in spec.split(","))
    a = socket.create_connection((HOST, p1), timeout=5)
    end = time.time() + 5
    while True:
        try:
            b = socket.create_connection((HOST, p2), timeout=5)
            break
        except OSError:
            if time.time() > end:
                raise
            time.sleep(0.05)
    a.settimeout(60)
    b.settimeout(60)
    return a, b, None


def ticks():
    """utime + stime of the relay process (the server, or socat), in clock ticks."""
    with open(f"/proc/{SRV}/stat") as f:
        v = f.read().rsplit(")", 1)[1].split()
    return int(v[11]) + int(v[12])


def bench(size):
    """Prints the seconds and the relay's CPU ticks for size bytes a -> b, both measured up to
    the last byte received (socat exits at the EOF that follows)."""
    plain = os.environ.get("RELAY_BENCH_PLAIN")
    p = plain_pair(plain) if plain else pair()
    if not p:
        return
    a, b, _ = p
    buf = bytearray(1 << 20)

    def push():
        left, mv = size, memoryview(bytes(1 << 20))
        while left > 0:
            left -= a.send(mv[:min(left, len(mv))])
        a.shutdown(socket.SHUT_WR)
    c0, t0 = ticks(), time.time()
    th = threading.Thread(target=push)
    th.start()
    got = 0
    while got < size:
        n = b.recv_into(buf)
        if not n:
            break
        got += n
    took, used = time.time() - t0, ticks() - c0
    th.join(10)
    if got != size:
        bad(f"bench: {got} of {size} bytes")
        return
    print(f"{took:.3f} {used}", flush=True)


if MODE == "bench":
    bench(int(os.environ.get("RELAY_BENCH_SIZE", str(1 << 30))))
    sys.exit(R.status())

TESTS = {
    "data": [t_both_ways, lambda: t_half_close("a"), lambda: t_half_close("b"),
             t_reset_mid_stream, t_stalled],
    "bytes": [t_bytes_cap],
    "rate": [t_rate],
    "idle": [t_idle],
    "fdlimit": [t_fdlimit],
    "hostile": [t_hostile],
}
base_fds = relaylib.nfds(SRV)
for t in TESTS[MODE]:
    try:
        t()
    except Exception as e:  # a crash of one check must not hide the others
        bad(f"{getattr(t, '__name__', t)}: {type(e).__name__}: {e}")
if MODE == "data":
    t_fds_back(base_fds)
sys.exit(R.status())
