#!/usr/bin/env python3
"""The server's relay driven with raw sockets on loopback: joining rules and their error codes,
the splice (early bytes, half-close both ways, backpressure), the limits (a cut is a reset, never
a clean EOF), the rate limit, and a server without a relay.
Usage: relay_raw.py MODE HOST PORT SERVER_PID
  MODE main:     server run with --hello-timeout 1 --relay-wait 3 --relay-max 2
  MODE limits:   server run with --relay-bytes 100K --relay-seconds 2
  MODE rate:     server run with --relay-rate 200K
  MODE disabled: server run with --no-relay
  MODE drain:    server run with --drain 10 (it is sent SIGTERM here)
Exit status = number of failures. Every wait is bounded."""
import json
import os
import re
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relaylib  # noqa: E402
import tpauth  # noqa: E402

MODE, HOST, PORT, SERVER_PID = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
R = tpauth.Report(f"relay_raw {MODE}")
ok, bad, check = R.ok, R.bad, R.check
uid = tpauth.id_maker(os.getpid())
HEX32 = re.compile(r"^[0-9a-f]{32}$")


def line_of(obj):
    return (json.dumps(obj, separators=(",", ":")) + "\n").encode()


class Conn(tpauth.LineConn):
    def __init__(self, rcvbuf=0, sndbuf=0):
        super().__init__(tpauth.dial((HOST, PORT), rcvbuf=rcvbuf, sndbuf=sndbuf))
        # the server speaks first, on relay connections too
        if self.read_challenge() is None:
            bad(f"first line {self.first!r}, want a challenge")

    def read_exact(self, n, timeout=10.0):
        """n bytes (after what line() left over), or fewer on EOF/timeout."""
        out, self.buf = self.buf[:n], self.buf[n:]
        end = time.time() + timeout
        while len(out) < n and time.time() < end:
            self.s.settimeout(max(0.01, end - time.time()))
            try:
                d = self.s.recv(min(1 << 20, n - len(out)))
            except socket.timeout:
                break
            if not d:
                break
            out += d
        return out

    def drain_until_end(self, timeout=10.0):
        """Reads until the stream ends: ('eof', n) for a clean EOF, ('reset', n) for
        ECONNRESET, ('timeout', n) if it did not end in time."""
        n = len(self.buf)
        self.buf = b""
        end = time.time() + timeout
        while time.time() < end:
            self.s.settimeout(max(0.01, end - time.time()))
            try:
                d = self.s.recv(1 << 20)
            except socket.timeout:
                continue
            except ConnectionResetError:
                return ("reset", n)
            if not d:
                return ("eof", n)
            n += len(d)
        return ("timeout", n)


def register(base, path=None):
    c = Conn()
    ident = uid(base)
    hello = tpauth.hello_msg(tpauth.Identity(ident), c.nonce, ident)
    if path:
        hello["path"] = path
    c.msg(hello)
    w = c.line()
    c.id = hello["id"]
    c.key = hello["key"]
    c.welcome = w
    return c


def session():
    """Two registered peers paired: (session, token_a, token_b, punch_a, punch_b, a, b)."""
    a, b = register("ra"), register("rb")
    a.msg({"type": "connect", "target": b.id})
    pa, pb = a.line(), b.line()
    if not (pa and pb and pa.get("type") == "punch" and pb.get("type") == "punch"):
        bad(f"pairing failed: {pa} / {pb}")
        return None
    if pa.get("key") != b.key or pb.get("key") != a.key:
        bad(f"each punch names the other peer's key: {pa.get('key')} / {pb.get('key')}")
    return pa["session"], pa.get("token"), pb.get("token"), pa, pb, a, b


def join(sess, token, early=b"", **kw):
    c = Conn(**kw)
    c.send(line_of({"type": "relay", "version": 1, "session": sess, "token": token}) + early)
    return c


def expect_error(c, code, what, timeout=5.0):
    m = c.line(timeout)
    got = m.get("code") if m and m.get("type") == "error" else m
    if check(got == code, f"{what}: error {code} (got {got})"):
        check(m.get("fatal", True) is True, f"{what}: the error is fatal")
        check(c.line(3.0) is None, f"{what}: the server closes the connection")


def expect_relayed(c, sess, what):
    m = c.line()
    return check(m == {"type": "relayed", "session": sess}, f"{what}: relayed (got {m})")


def relayed_pair(what_a, what_b, a_kw=None, b_kw=None):
    """A fresh session whose two sides joined the relay (a with a_kw, b with b_kw: join's
    socket options) and were told `relayed`: (a, b), or None when that failed."""
    s = session()
    if not s:
        return None
    sess = s[0]
    a, b = join(sess, s[1], **(a_kw or {})), join(sess, s[2], **(b_kw or {}))
    if not (expect_relayed(a, sess, what_a) and expect_relayed(b, sess, what_b)):
        return None
    return a, b


def rss_kib():
    return tpauth.rss_kib(relaylib.server_pid(SERVER_PID))


# ---------------------------------------------------------------- main

def t_offer():
    s = session()
    if not s:
        return
    sess, ta, tb, pa, pb, a, b = s
    check(a.welcome.get("relay") is True, "welcome says relay:true")
    check(pa.get("relay") is True and pb.get("relay") is True, "both punches offer the relay")
    check(bool(ta and tb and HEX32.match(ta) and HEX32.match(tb)), "each punch has a 32-hex token")
    check(ta != tb, "the two peers get different tokens")
    check("direct" not in pa and "reason" not in pa, "direct is not denied when both allow it")


def t_refusals():
    s = session()
    if not s:
        return
    sess, ta, tb = s[0], s[1], s[2]
    expect_error(join("0" * 32, ta), "relay-refused", "unknown session")
    wrong = ("f" if ta[0] != "f" else "e") + ta[1:]
    if wrong == tb:
        wrong = "0" * 32
    expect_error(join(sess, wrong), "relay-refused", "wrong token")
    expect_error(join(sess, "not-hex"), "bad-field", "malformed token")
    c = s[5]  # a registered control connection
    c.msg({"type": "relay", "version": 1, "session": sess, "token": ta})
    expect_error(c, "unexpected-type", "relay on a registered control connection")


def t_wait_timeout():
    s = session()
    if not s:
        return
    t0 = time.time()
    c = join(s[0], s[1])
    m = c.line(8.0)
    took = time.time() - t0
    code = m.get("code") if m else None
    check(code == "relay-timeout", f"a lone side gets relay-timeout (got {m})")
    # --relay-wait 3 and --hello-timeout 1: the relay connection left the hello path
    check(2.5 <= took <= 6.0, f"after --relay-wait (3 s), not the hello timeout (took {took:.1f} s)")
    check(c.line(3.0) is None, "relay-timeout closes the connection")
    expect_error(join(s[0], s[2]), "relay-refused", "joining a timed-out session")


def t_silent_gets_hello_timeout():
    c = Conn()
    m = c.line(5.0)
    check(m and m.get("code") == "hello-timeout", f"a silent connection still gets hello-timeout ({m})")


def t_splice_half_close():
    s = session()
    if not s:
        return
    sess, ta, tb = s[0], s[1], s[2]
    a = join(sess, ta, early=b"early from a")
    time.sleep(0.2)
    expect_error(join(sess, ta), "relay-refused", "a token used twice")
    b = join(sess, tb)
    if not (expect_relayed(a, sess, "first side") and expect_relayed(b, sess, "second side")):
        return
    check(b.read_exact(12) == b"early from a", "bytes sent before the splice are forwarded first")
    a.send(b"ping")
    a.s.shutdown(socket.SHUT_WR)
    check(b.read_exact(4) == b"ping", "a -> b")
    check(b.drain_until_end(5) == ("eof", 0), "a's FIN reaches b as a clean EOF")
    b.send(b"pong after a closed")
    check(a.read_exact(19) == b"pong after a closed", "b -> a still flows after a's half-close")
    b.s.shutdown(socket.SHUT_WR)
    check(a.drain_until_end(5) == ("eof", 0), "b's FIN reaches a as a clean EOF")


def t_full():
    ss = [session() for _ in range(3)]
    if not all(ss):
        return
    waiting = [join(ss[0][0], ss[0][1]), join(ss[1][0], ss[1][1])]
    time.sleep(0.2)
    expect_error(join(ss[2][0], ss[2][1]), "relay-full", "a third session with --relay-max 2")
    # the second side of a waiting session is not a new session: it still gets in
    b = join(ss[0][0], ss[0][2])
    check(expect_relayed(b, ss[0][0], "second side of a session at the limit"), "joins at the limit")
    for c in waiting + [b]:
        c.close()


def t_backpressure():
    ab = relayed_pair("sender", "stalled reader", {"sndbuf": 65536}, {"rcvbuf": 65536})
    if not ab:
        return
    a, b = ab
    chunk = bytes(i % 251 for i in range(65536))
    rss0 = rss_kib()
    a.s.setblocking(False)
    sent, end, limit = 0, time.time() + 4.0, 64 << 20
    stalled_since = None
    while sent < limit and time.time() < end:
        try:
            n = a.s.send(chunk[sent % 251:] if sent % 251 else chunk)
            sent += n
            stalled_since = None
        except BlockingIOError:
            stalled_since = stalled_since or time.time()
            if time.time() - stalled_since > 1.0:
                break  # blocked for a second: the relay stopped reading us
            time.sleep(0.01)
    grew = rss_kib() - rss0
    check(sent < 32 << 20, f"the sender blocks while the reader does not read ({sent >> 10} KiB taken)")
    # without backpressure it grows by the ~64 MiB pushed; ASan quarantine alone costs a few MiB
    check(grew < 16384, f"the server's memory stays bounded (RSS grew {grew} KiB)")
    a.s.setblocking(True)
    a.s.shutdown(socket.SHUT_WR)
    got = b.read_exact(sent, timeout=20)
    want_ok = len(got) == sent and all(
        got[i:i + 65536] == bytes((j % 251) for j in range(i, i + min(65536, sent - i)))
        for i in range(0, min(sent, 1 << 20), 65536))
    check(want_ok, f"after the reader resumes it gets all {sent} bytes, in order")
    check(b.drain_until_end(5) == ("eof", 0), "then a clean EOF")


def t_no_path():
    x, y = register("only-relay", "relay"), register("only-direct", "direct")
    x.msg({"type": "connect", "target": y.id})
    m = x.line()
    check(m and m.get("code") == "no-path" and m.get("fatal") is False,
          f"relay-only vs direct-only: non-fatal no-path ({m})")
    check(m and x.id in m.get("message", "") and y.id in m.get("message", ""),
          "the no-path message names both peers")
    x.msg({"type": "ping", "seq": 5})
    check(x.line() == {"type": "pong", "seq": 5}, "the control connection stays usable")
    z = register("any")
    z.msg({"type": "connect", "target": x.id})
    pz, px = z.line(), x.line()
    check(pz and pz.get("direct") is False and pz.get("relay") is True,
          f"with a relay-only peer the punch says direct:false, relay:true ({pz})")
    check(pz and "relay only" in pz.get("reason", "") and px and px.get("direct") is False,
          "both copies carry the reason")


# ---------------------------------------------------------------- limits

def t_bytes_cut():
    ab = relayed_pair("sender", "reader")
    if not ab:
        return
    a, b = ab
    a.s.setblocking(False)
    sent, end = 0, time.time() + 5
    # a reset seen by send() is consumed there: a later recv() then reads EOF, so it counts here
    send_reset = False
    while sent < 200 * 1024 and time.time() < end:
        try:
            sent += a.s.send(b"x" * 8192)
        except BlockingIOError:
            time.sleep(0.01)
        except (ConnectionResetError, BrokenPipeError):
            send_reset = True
            break
    how, n = b.drain_until_end(5)
    check(how == "reset", f"a --relay-bytes cut reaches the reader as a reset, not EOF ({how})")
    check(n <= 100 * 1024, f"no more than the limit got through ({n} bytes)")
    a.s.setblocking(True)
    how_a, _ = a.drain_until_end(5)
    if send_reset and how_a == "eof":
        how_a = "reset (seen by send)"
    check(how_a.startswith("reset"), f"the sender is reset too ({how_a})")


def t_seconds_cut():
    ab = relayed_pair("a", "b")
    if not ab:
        return
    a, b = ab
    t0 = time.time()
    how, _ = b.drain_until_end(8)
    took = time.time() - t0
    check(how == "reset", f"a --relay-seconds cut is a reset ({how})")
    check(1.5 <= took <= 5, f"it comes after --relay-seconds 2 ({took:.1f} s)")


# ---------------------------------------------------------------- rate

def t_rate():
    ab = relayed_pair("sender", "reader")
    if not ab:
        return
    a, b = ab
    total = 600 * 1024
    t0 = time.time()
    import threading
    th = threading.Thread(target=lambda: a.send(b"r" * total))
    th.start()
    got = b.read_exact(total, timeout=15)
    took = time.time() - t0
    th.join(10)
    check(len(got) == total, f"everything arrives ({len(got)} of {total})")
    check(took >= 2.0, f"600 KiB at --relay-rate 200K takes about 3 s ({took:.1f} s)")


# ---------------------------------------------------------------- disabled

def t_disabled():
    a, b = register("nr-a"), register("nr-b")
    check(a.welcome.get("relay") is False, f"welcome says relay:false ({a.welcome})")
    a.msg({"type": "connect", "target": b.id})
    pa = a.line()
    check(pa and pa.get("type") == "punch" and "relay" not in pa and "token" not in pa,
          "the punch offers no relay")
    expect_error(join(pa["session"], "0" * 32), "relay-disabled", "a relay line")
    x = register("nr-only-relay", "relay")
    a.msg({"type": "connect", "target": x.id})
    m = a.line()
    check(m and m.get("code") == "no-path" and "does not relay" in m.get("message", ""),
          f"a relay-only peer on a server without relay: no-path ({m})")


def t_drain_waiting():
    """A lone side waits for its other one; the server drains. Nothing can join a draining
    server (its listeners are closed): the lone side is told server-shutdown at once, instead of
    holding the drain until --relay-wait (30 s) or --drain (10 s)."""
    s = session()
    if not s:
        return
    c = join(s[0], s[1])
    time.sleep(0.5)  # joined and waiting
    t0 = time.time()
    os.kill(relaylib.server_pid(SERVER_PID), signal.SIGTERM)
    m = c.line(8.0)
    took = time.time() - t0
    code = m.get("code") if m else None
    check(code == "server-shutdown", f"the waiting side gets server-shutdown (got {m})")
    check(took < 2.0, f"at the drain's start, not at its end (took {took:.1f} s)")


TESTS = {
    "main": [t_offer, t_refusals, t_no_path, t_splice_half_close, t_full, t_backpressure,
             t_silent_gets_hello_timeout, t_wait_timeout],
    "limits": [t_bytes_cut, t_seconds_cut],
    "rate": [t_rate],
    "disabled": [t_disabled],
    "drain": [t_drain_waiting],
}

for t in TESTS[MODE]:
    try:
        t()
    except Exception as e:  # a crash of one check must not hide the others
        bad(f"{t.__name__}: {type(e).__name__}: {e}")
sys.exit(R.status())
