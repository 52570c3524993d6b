#!/usr/bin/env python3
"""Hostile clients against one running tcpunch-rendezvous, all at once: random binary garbage,
a 10 MB line without a newline, slowloris clients (one byte a second), 2000 connections that
never say hello, every message type malformed, a duplicate id with a wrong key, connect-to-self
and the per-address cap. The server's memory (VmRSS) is sampled throughout.

Usage: hostile.py HOST PORT SERVER_PID WORKDIR HELLO_TIMEOUT MAX_PER_IP [SANITIZED]
  The server must run with --hello-timeout HELLO_TIMEOUT --max-per-ip MAX_PER_IP and a
  --rate-per-ip of at least MAX_PER_IP + 2. Attack connections come from 127.20.0.0 and up
  (loopback sources spread over 127.0.0.0/8, never 127.0.0.1), so the per-address limits
  apply to each source on its own and the legitimate peers on 127.0.0.1 are not counted
  with them.
  WORKDIR/attack.peak is written once the 2000 silent connections are all open; a churn of
  garbage, malformed and slowloris connections goes on until WORKDIR/pair.done appears (at
  most CHURN_MAX seconds). SANITIZED=1 (a sanitizer build) leaves out the check that a second
  flood reuses the first one's memory: AddressSanitizer's quarantine holds freed memory back
  on purpose. Exit status = number of failures (at most 100). Every loop and
  wait is bounded."""
import json
import os
import random
import selectors
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpauth  # noqa: E402

HOST, PORT, SERVER_PID, WORKDIR = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
HELLO_TIMEOUT, MAX_PER_IP = float(sys.argv[5]), int(sys.argv[6])
SANITIZED = len(sys.argv) > 7 and sys.argv[7] == "1"
IDLE_CONNS = 2000
IDLE_PER_SOURCE = 8
BIG_LINE = 10 * 1024 * 1024
CHURN_MAX = 25.0            # seconds the churn may wait for pair.done
RSS_GROWTH_MAX = 64 << 20   # bytes the server's RSS may grow at the peak of the attack
SESSION = "0123456789abcdef0123456789abcdef"
TOKEN = "fedcba9876543210fedcba9876543210"

FAILS = [0]
LOCK = threading.Lock()
T_START = time.time()


def say(tag, what):
    with LOCK:
        print(f"{tag} [hostile +{time.time() - T_START:5.1f}s] {what}", flush=True)


def ok(what):
    say("ok  ", what)


def bad(what):
    with LOCK:
        FAILS[0] += 1
    say("FAIL", what)


def check(cond, what):
    (ok if cond else bad)(what)
    return cond


# ---- source addresses: one /16 of 127.0.0.0/8 per kind of attack ----

class Sources:
    def __init__(self, second):
        self.second, self.n, self.lock = second, 0, threading.Lock()

    def next(self):
        with self.lock:
            self.n += 1
            n = self.n
        return "127.%d.%d.%d" % (self.second, n // 250, n % 250 + 1)


IDLE_SRC = 20    # 127.20.x.y: the silent flood, IDLE_PER_SOURCE connections per address
MISC = Sources(21)     # garbage, malformed lines, churn: one address per connection
CAP_SRC = "127.22.0.1"
SLOW = Sources(23)
BIG_SRC = "127.24.0.1"
REG = Sources(25)      # registered peers


def idle_source(i):
    k = i // IDLE_PER_SOURCE
    return "127.%d.%d.%d" % (IDLE_SRC, k // 250, k % 250 + 1)


# ---- the server's memory ----

def rss():
    """VmRSS of the server in bytes, or None once it is gone."""
    try:
        with open(f"/proc/{SERVER_PID}/status") as f:
            for ln in f:
                if ln.startswith("VmRSS:"):
                    return int(ln.split()[1]) * 1024
    except OSError:
        return None
    return None


class RssSampler(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.peak, self.stop, self.samples = 0, threading.Event(), 0

    def run(self):
        while not self.stop.wait(0.02):
            r = rss()
            if r is not None:
                self.peak = max(self.peak, r)
                self.samples += 1


# ---- one blocking connection ----

class Conn(tpauth.LineConn):
    def __init__(self, source, challenge=True, timeout=5.0):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.s.bind((source, 0))
        self.s.settimeout(timeout)
        self.s.connect((HOST, PORT))
        self.source, self.buf = source, b""
        self.first = self.line()
        self.nonce = self.first.get("nonce") if tpauth.is_challenge(self.first) else None
        if challenge and self.nonce is None:
            bad(f"{source}: first line {self.first!r}, want a challenge")

    def close(self):
        self.s.close()


def is_error(m, code, fatal=True):
    return isinstance(m, dict) and m.get("type") == "error" and m.get("code") == code and \
        m.get("fatal", True) is fatal and isinstance(m.get("message"), str) and m["message"] != ""


def expect_error(c, m, codes, what, fatal=True, quiet=False):
    """m must be an error with one of codes; a fatal one must close the connection."""
    codes = (codes,) if isinstance(codes, str) else codes
    good = any(is_error(m, code, fatal) for code in codes)
    if good and fatal:
        good = c.closed()
        if not good:
            bad(f"{what}: fatal {m.get('code')} but the connection stayed open")
            return False
    if not good:
        bad(f"{what}: got {m!r}, want error {'/'.join(codes)} (fatal={fatal})")
    elif not quiet:
        ok(f"{what}: {m['code']}")
    return good


def one_shot(what, data, codes, source=None, quiet=False):
    """A fresh connection sends data as its first bytes; the answer is a fatal error."""
    try:
        c = Conn(source or MISC.next())
    except OSError as e:
        bad(f"{what}: cannot connect: {e}")
        return False
    try:
        c.send(data)
        return expect_error(c, c.line(), codes, what, quiet=quiet)
    except OSError as e:
        bad(f"{what}: {e}")
        return False
    finally:
        c.close()


def register(ident, source=None, key_of=None):
    """A registered connection (hello/welcome checked), or None."""
    c = Conn(source or REG.next())
    m = tpauth.hello_msg(tpauth.Identity(key_of or ident), c.nonce, ident)
    c.msg(m)
    w = c.line()
    if not (isinstance(w, dict) and w.get("type") == "welcome" and w.get("id") == ident):
        bad(f"hello as {ident}: got {w!r}, want welcome")
        c.close()
        return None
    return c


def uid(base):
    return f"{base}-{os.getpid()}-{random.randrange(1 << 30)}"


# ---- 1. 2000 connections that never say hello ----

class IdleFlood(threading.Thread):
    """Opens IDLE_CONNS connections in batches, reads their challenges, then waits for the
    server's hello-timeout on every one of them. One thread, one selector."""

    def __init__(self, wave):
        super().__init__(daemon=True)
        self.wave = wave
        self.opened = threading.Event()
        self.challenged = 0
        self.results = {}   # index -> (code or None, seconds from connect to the error)
        self.t_open_done = None

    def run(self):
        sel = selectors.DefaultSelector()
        st = {}
        deadline = time.time() + 20 + HELLO_TIMEOUT
        batch = 250
        for start in range(0, IDLE_CONNS, batch):
            for i in range(start, min(start + batch, IDLE_CONNS)):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                try:
                    s.bind((idle_source(i), 0))
                    s.connect_ex((HOST, PORT))
                except OSError as e:
                    bad(f"silent connection {i}: {e}")
                    s.close()
                    continue
                st[s] = {"i": i, "t0": time.time(), "buf": b"", "lines": []}
                sel.register(s, selectors.EVENT_READ)
            # the next batch once this one has its challenges (at most 5 s)
            want = min(start + batch, IDLE_CONNS)
            end = time.time() + 5
            while self.challenged < want and time.time() < end:
                self._poll(sel, st, 0.1)
        self.t_open_done = time.time()
        check(self.challenged == IDLE_CONNS,
              f"wave {self.wave}: {IDLE_CONNS} silent connections from "
              f"{IDLE_CONNS // IDLE_PER_SOURCE} addresses each got a challenge "
              f"({self.challenged})")
        self.opened.set()
        while st and time.time() < deadline:
            self._poll(sel, st, 0.2)
        for s, c in st.items():
            self.results.setdefault(c["i"], (None, None))
            s.close()
        sel.close()

    def _poll(self, sel, st, timeout):
        for key, _ in sel.select(timeout):
            s = key.fileobj
            c = st[s]
            try:
                d = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                d = b""
            if d:
                c["buf"] += d
                while b"\n" in c["buf"]:
                    raw, c["buf"] = c["buf"].split(b"\n", 1)
                    try:
                        m = json.loads(raw)
                    except ValueError:
                        m = {"raw": raw}
                    c["lines"].append(m)
                    if len(c["lines"]) == 1 and tpauth.is_challenge(m):
                        self.challenged += 1
                    elif len(c["lines"]) == 2:
                        code = m.get("code") if isinstance(m, dict) and \
                            is_error(m, m.get("code") or "") else None
                        self.results[c["i"]] = (code, time.time() - c["t0"])
                continue
            # EOF (or reset): the server is done with this one
            if c["i"] not in self.results:
                self.results[c["i"]] = ("closed without an error" if len(c["lines"]) else
                                        "closed without a challenge", time.time() - c["t0"])
            sel.unregister(s)
            s.close()
            del st[s]


# ---- 2. slowloris: one byte a second ----

def slowloris(tag, results):
    """Sends a plausible hello one byte a second; the server must cut it at the hello timeout
    however busy the client looks."""
    try:
        c = Conn(SLOW.next())
    except OSError as e:
        results.append((tag, f"cannot connect: {e}", 0, 0))
        return
    text = b'{"type":"hello","version":1,"id":"slow","endpoints":[' + b" " * 200
    t0, sent, got = time.time(), 0, None
    c.s.settimeout(1.0)
    try:
        while sent < len(text) and time.time() - t0 < HELLO_TIMEOUT + 6:
            try:
                c.send(text[sent:sent + 1])
            except OSError:
                break
            sent += 1
            m = c.line(timeout=1.0)
            if m is not None or c.buf:
                got = m
                break
            # c.line returned None: a second without any answer, or EOF
        dt = time.time() - t0
        closed = got is not None and is_error(got, "hello-timeout") and c.closed()
        results.append((tag, got, dt, sent if closed else -sent))
    finally:
        c.close()


# ---- 3. a 10 MB line without a newline ----

def big_line():
    c = Conn(BIG_SRC)
    try:
        c.send(b"x" * 4095)
        m = c.line(timeout=0.5)
        check(m is None, f"10 MB line: 4095 bytes without a newline are still accepted ({m!r})")
        c.send(b"x")
        t0 = time.time()
        m = c.line(timeout=3.0)
        check(is_error(m, "line-too-long"),
              f"10 MB line: the 4096th byte without a newline is line-too-long at once "
              f"({time.time() - t0:.2f} s, {m!r})")
        # the rest of the 10 MB: the server discards what it reads after the error, and must
        # neither buffer it nor die; a reset on our side is fine
        sent, chunk, t1 = 4096, b"x" * 65536, time.time()
        c.s.settimeout(10.0)
        try:
            while sent < BIG_LINE and time.time() - t1 < 10:
                c.s.sendall(chunk)
                sent += len(chunk)
            c.s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        closed = c.closed(timeout=8.0)
        check(closed, f"10 MB line: the server closed the connection after the error "
                      f"({sent // 1024} KiB sent in {time.time() - t1:.2f} s)")
    except OSError as e:
        bad(f"10 MB line: {e}")
    finally:
        c.close()


# ---- 4. garbage and every message type malformed ----

MALFORMED = [
    # (what, line, code) -- each the first line of a fresh connection
    ("hello: version is a string", {"type": "hello", "version": "1", "id": "x", "endpoints": []},
     "bad-field"),
    ("hello: no endpoints", {"type": "hello", "version": 1, "id": "x"}, "bad-field"),
    ("hello: no version", {"type": "hello", "id": "x", "endpoints": []}, "bad-field"),
    ("hello: id is a number", {"type": "hello", "version": 1, "id": 5, "endpoints": []},
     "bad-field"),
    ("hello: endpoints is an object", {"type": "hello", "version": 1, "id": "x",
                                       "endpoints": {}}, "bad-field"),
    ("hello: an endpoint is a number", {"type": "hello", "version": 1, "id": "x",
                                        "endpoints": [5]}, "bad-field"),
    ("hello: unknown field", {"type": "hello", "version": 1, "id": "x", "endpoints": [],
                              "color": "red"}, "bad-field"),
    ("hello: path is not a policy", {"type": "hello", "version": 1, "id": "x", "endpoints": [],
                                     "path": "sideways"}, "bad-field"),
    ("hello: key is not base64", {"type": "hello", "version": 1, "id": "x", "endpoints": [],
                                  "key": "not base64!", "sig": "AAAA"}, "bad-field"),
    ("hello: key is a number", {"type": "hello", "version": 1, "id": "x", "endpoints": [],
                                "key": 7, "sig": "AAAA"}, "bad-field"),
    ("hello: bad id", {"type": "hello", "version": 1, "id": "a b", "endpoints": []}, "bad-id"),
    ("hello: version 2", {"type": "hello", "version": 2, "id": "x", "endpoints": []},
     "bad-version"),
    ("hello: a host name endpoint", {"type": "hello", "version": 1, "id": "x",
                                     "endpoints": ["example.com:80"]}, "bad-endpoint"),
    ("hello: 9 endpoints", {"type": "hello", "version": 1, "id": "x",
                            "endpoints": ["10.0.0.%d:80" % i for i in range(1, 10)]},
     "too-many-endpoints"),
    ("hello: no key, no sig", {"type": "hello", "version": 1, "id": "x", "endpoints": []},
     "bad-signature"),
    ("connect: no target", {"type": "connect"}, "bad-field"),
    ("connect: target is a number", {"type": "connect", "target": 5}, "bad-field"),
    ("connect: unknown field", {"type": "connect", "target": "x", "via": "y"}, "bad-field"),
    ("connect: bad target", {"type": "connect", "target": "a b"}, "bad-id"),
    ("connect: well-formed, before hello", {"type": "connect", "target": "x"}, "not-registered"),
    ("ping: no seq", {"type": "ping"}, "bad-field"),
    ("ping: seq is a string", {"type": "ping", "seq": "1"}, "bad-field"),
    ("ping: negative seq", {"type": "ping", "seq": -1}, "bad-field"),
    ("ping: unknown field", {"type": "ping", "seq": 1, "Seq": 1}, "bad-field"),
    ("ping: well-formed, before hello", {"type": "ping", "seq": 1}, "not-registered"),
    ("pong: no seq", {"type": "pong"}, "bad-field"),
    ("pong: seq is a boolean", {"type": "pong", "seq": True}, "bad-field"),
    ("pong: unknown field", {"type": "pong", "seq": 1, "x": 1}, "bad-field"),
    ("probe: no version", {"type": "probe"}, "bad-field"),
    ("probe: version is a string", {"type": "probe", "version": "1"}, "bad-field"),
    ("probe: token is a number", {"type": "probe", "version": 1, "token": 7}, "bad-field"),
    ("probe: unknown field", {"type": "probe", "version": 1, "id": "bob"}, "bad-field"),
    ("probe: version 2", {"type": "probe", "version": 2}, "bad-version"),
    ("relay: no token", {"type": "relay", "version": 1, "session": SESSION}, "bad-field"),
    ("relay: session is a number", {"type": "relay", "version": 1, "session": 5,
                                    "token": TOKEN}, "bad-field"),
    ("relay: token too short", {"type": "relay", "version": 1, "session": SESSION,
                                "token": "abc"}, "bad-field"),
    ("relay: unknown field", {"type": "relay", "version": 1, "session": SESSION, "token": TOKEN,
                              "id": "bob"}, "bad-field"),
    ("relay: version 2", {"type": "relay", "version": 2, "session": SESSION, "token": TOKEN},
     "bad-version"),
    ("relay: well-formed, unknown session", {"type": "relay", "version": 1, "session": SESSION,
                                             "token": TOKEN}, "relay-refused"),
    # messages the server sends, and peer-to-peer ones: the direction decides, fields or not
    ("challenge sent to the server", {"type": "challenge", "version": 1, "nonce": 5},
     "unexpected-type"),
    ("welcome sent to the server", {"type": "welcome"}, "unexpected-type"),
    ("punch sent to the server", {"type": "punch", "session": 1}, "unexpected-type"),
    ("error sent to the server", {"type": "error", "code": 5}, "unexpected-type"),
    ("observed sent to the server", {"type": "observed", "observed": []}, "unexpected-type"),
    ("relayed sent to the server", {"type": "relayed", "session": "x"}, "unexpected-type"),
    ("shake sent to the server", {"type": "shake", "version": "1"}, "unexpected-type"),
    ("confirm sent to the server", {"type": "confirm", "sig": 1}, "unexpected-type"),
    ("unknown type", {"type": "bogus"}, "unknown-type"),
    ("type is a number", {"type": 5}, "bad-message"),
    ("no type", {"id": "x"}, "bad-message"),
    ("not an object", [1, 2], "bad-message"),
]


def malformed_fresh():
    good = 0
    for what, obj, code in MALFORMED:
        good += one_shot(what, json.dumps(obj, separators=(",", ":")) + "\n", code)
    one_shot("duplicate keys", b'{"type":"ping","seq":1,"seq":2}\n', "bad-json")
    one_shot("an empty line", b"\n", "bad-json")
    one_shot("invalid UTF-8", b'{"type":"\xff\xfe"}\n', "bad-json")
    return good


def malformed_registered():
    """The types valid after hello, malformed on a registered connection: all fatal."""
    cases = [
        ("connect: no target", {"type": "connect"}, "bad-field"),
        ("connect: target is a list", {"type": "connect", "target": ["x"]}, "bad-field"),
        ("connect: unknown field", {"type": "connect", "target": "x", "id": "y"}, "bad-field"),
        ("ping: seq 1.5", {"type": "ping", "seq": 1.5}, "bad-field"),
        ("ping: unknown field", {"type": "ping", "seq": 1, "x": None}, "bad-field"),
        ("pong: seq null", {"type": "pong", "seq": None}, "bad-field"),
        ("a second hello", None, "already-registered"),
        ("probe after hello", {"type": "probe", "version": 1}, "unexpected-type"),
        ("relay after hello", {"type": "relay", "version": 1, "session": SESSION,
                               "token": TOKEN}, "unexpected-type"),
        ("welcome to the server after hello", {"type": "welcome"}, "unexpected-type"),
        ("garbage after hello", b"\x00\x01garbage\n", "bad-json"),
    ]
    for what, obj, code in cases:
        ident = uid("reg")
        c = register(ident)
        if not c:
            continue
        if obj is None:
            c.msg(tpauth.hello_msg(tpauth.Identity(ident), c.nonce, ident))
        elif isinstance(obj, bytes):
            c.send(obj)
        else:
            c.msg(obj)
        expect_error(c, c.line(), code, f"registered, {what}")
        c.close()


def ownership_and_self():
    owner = uid("owned")
    c = register(owner)
    if not c:
        return
    d = Conn(REG.next())
    d.msg(tpauth.hello_msg(tpauth.Identity(owner + "-thief"), d.nonce, owner))
    expect_error(d, d.line(), "id-owned", "the same id with a wrong key while the owner is online")
    d.close()
    d = Conn(REG.next())
    d.msg(tpauth.hello_msg(tpauth.Identity(owner), d.nonce, owner))
    expect_error(d, d.line(), "id-taken", "the owner's key on a second connection")
    d.close()
    # connect to self: non-fatal, the connection stays usable
    c.msg({"type": "connect", "target": owner})
    expect_error(c, c.line(), "self-connect", "connect to self", fatal=False)
    c.msg({"type": "connect", "target": uid("nobody")})
    expect_error(c, c.line(), "peer-not-found", "connect to nobody", fatal=False)
    c.msg({"type": "ping", "seq": 77})
    check(c.line() == {"type": "pong", "seq": 77}, "still registered after self-connect")
    c.close()
    time.sleep(0.3)
    d = Conn(REG.next())
    d.msg(tpauth.hello_msg(tpauth.Identity(owner + "-thief"), d.nonce, owner))
    expect_error(d, d.line(), "id-owned", "a wrong key after the owner left")
    d.close()


def garbage(rng, n, quiet=False):
    """n connections sending 4096 to 20000 random bytes: bad-json (a newline among the first
    4096 bytes) or line-too-long, then closed."""
    good = 0
    for _ in range(n):
        good += one_shot("random binary garbage", rng.randbytes(rng.randrange(4096, 20000)),
                         ("bad-json", "line-too-long"), quiet=quiet)
    return good


# ---- 5. the per-address cap ----

def per_ip_cap():
    held = []
    try:
        for _ in range(MAX_PER_IP):
            held.append(Conn(CAP_SRC))
        check(all(h.nonce for h in held),
              f"{MAX_PER_IP} connections at once from {CAP_SRC} are served")
        c = Conn(CAP_SRC, challenge=False)
        expect_error(c, c.first, "too-many-connections",
                     f"connection {MAX_PER_IP + 1} from {CAP_SRC}, instead of the challenge")
        c.close()
        held.pop().close()
        # the server notices the close (EOF) and releases the slot
        end, served = time.time() + 3, False
        while time.time() < end and not served:
            time.sleep(0.2)
            c = Conn(CAP_SRC, challenge=False)
            served = c.nonce is not None
            c.close()
        check(served, f"after one of them closed, {CAP_SRC} is served again")
    finally:
        for h in held:
            h.close()


# ---- the churn that runs until the legitimate pair is done ----

def churn(rng, stats):
    """Garbage, malformed lines and slowloris, over and over, until pair.done (bounded)."""
    end = time.time() + CHURN_MAX
    done_file = os.path.join(WORKDIR, "pair.done")
    slow = []
    while time.time() < end and not os.path.exists(done_file):
        k = stats["n"] % 4
        if k == 0:
            stats["good"] += garbage(rng, 1, quiet=True)
        else:
            what, obj, code = MALFORMED[rng.randrange(len(MALFORMED))]
            stats["good"] += one_shot(what, json.dumps(obj) + "\n", code, quiet=True)
        stats["n"] += 1
        slow = [t for t in slow if t.is_alive()]
        if len(slow) < 4:
            t = threading.Thread(target=slowloris, args=("churn", stats["slow"]), daemon=True)
            t.start()
            slow.append(t)
        time.sleep(0.02)
    stats["ended"] = time.time()
    stats["done_seen"] = os.path.exists(done_file)
    for t in slow:
        t.join(HELLO_TIMEOUT + 8)


def flood_verdict(flood):
    """The silent connections: all cut at the hello timeout, none before it."""
    codes = {}
    for i in range(IDLE_CONNS):
        code, _ = flood.results.get(i, (None, None))
        codes[code] = codes.get(code, 0) + 1
    times = [dt for code, dt in flood.results.values() if code == "hello-timeout"]
    check(codes.get("hello-timeout", 0) == IDLE_CONNS,
          f"wave {flood.wave}: all {IDLE_CONNS} silent connections got hello-timeout and were "
          f"closed ({codes})")
    if times:
        check(min(times) >= HELLO_TIMEOUT - 0.1 and max(times) <= HELLO_TIMEOUT + 4,
              f"wave {flood.wave}: ... after {min(times):.2f} to {max(times):.2f} s "
              f"(--hello-timeout {HELLO_TIMEOUT:g})")


def main():
    rng = random.Random(0x7c9)
    base = rss()
    if not check(base is not None, f"the server's VmRSS is readable ({SERVER_PID})"):
        return
    ok(f"VmRSS before the attack: {base / 1048576:.1f} MiB")
    sampler = RssSampler()
    sampler.start()

    flood = IdleFlood(1)
    flood.start()
    slow_results = []
    threads = [threading.Thread(target=slowloris, args=(f"slowloris {i}", slow_results),
                                daemon=True) for i in range(3)]
    threads.append(threading.Thread(target=big_line, daemon=True))
    for t in threads:
        t.start()
    if not flood.opened.wait(40):
        bad("the silent connections were not all open after 40 s")
    ok(f"VmRSS with {IDLE_CONNS} silent connections open: {(rss() or 0) / 1048576:.1f} MiB")
    # now the legitimate pair may start: the attack goes on around it
    with open(os.path.join(WORKDIR, "attack.peak"), "w") as f:
        f.write(f"{time.time()}\n")
    t_peak = time.time()
    stats = {"n": 0, "good": 0, "slow": []}
    churner = threading.Thread(target=churn, args=(random.Random(7), stats), daemon=True)
    churner.start()
    # the one-off checks, concurrently with everything else
    per_ip_cap()
    malformed_fresh()
    malformed_registered()
    ownership_and_self()
    check(garbage(rng, 20) == 20, "20 connections of random binary garbage refused")

    flood.join(30 + HELLO_TIMEOUT)
    for t in threads:
        t.join(HELLO_TIMEOUT + 20)
    churner.join(CHURN_MAX + HELLO_TIMEOUT + 15)
    flood_verdict(flood)
    for tag, got, dt, sent in slow_results:
        check(sent > 0 and HELLO_TIMEOUT - 0.1 <= dt <= HELLO_TIMEOUT + 3,
              f"{tag}: one byte a second, cut by hello-timeout after {dt:.1f} s and "
              f"{abs(sent)} bytes ({got!r})")
    # the churn ran while the pair ran
    churn_slow = stats["slow"]
    check(stats.get("done_seen", False),
          f"the churn went on until the legitimate pair was done "
          f"({stats.get('ended', 0) - t_peak:.1f} s after the peak)")
    check(stats["n"] > 0 and stats["good"] == stats["n"],
          f"churn: {stats['good']} of {stats['n']} garbage/malformed connections refused "
          f"with the right code")
    check(churn_slow and all(s > 0 for _, _, _, s in churn_slow),
          f"churn: {len(churn_slow)} slowloris connections, all cut by hello-timeout")

    # memory: bounded at the peak of the attack
    peak1 = sampler.peak
    check(peak1 - base < RSS_GROWTH_MAX,
          f"VmRSS peak {peak1 / 1048576:.1f} MiB: grew {(peak1 - base) / 1048576:.1f} MiB "
          f"during the attack (bound {RSS_GROWTH_MAX >> 20} MiB), {sampler.samples} samples")
    after1 = rss() or 0
    ok(f"VmRSS once the attack is over: {after1 / 1048576:.1f} MiB (the allocator may keep "
       f"freed memory for reuse)")
    # ... and nothing is left behind per connection: a second flood of as many silent
    # connections (from the same addresses, whose counts must have been released) reuses
    # that memory instead of adding to it
    sampler.peak = 0
    flood2 = IdleFlood(2)
    flood2.start()
    flood2.join(30 + HELLO_TIMEOUT)
    flood_verdict(flood2)
    sampler.stop.set()
    sampler.join(2)
    peak2, after2 = sampler.peak, rss() or 0
    if SANITIZED:
        check(peak2 - base < RSS_GROWTH_MAX,
              f"a second wave: VmRSS peak {peak2 / 1048576:.1f} MiB, grew "
              f"{(peak2 - base) / 1048576:.1f} MiB in all (bound {RSS_GROWTH_MAX >> 20} MiB); "
              f"reuse not checked in a sanitizer build (ASan's quarantine holds freed memory)")
    else:
        check(peak2 <= max(peak1, after1) + (2 << 20),
              f"a second wave of {IDLE_CONNS} silent connections: VmRSS peak "
              f"{peak2 / 1048576:.1f} MiB, not above the first one's {peak1 / 1048576:.1f} MiB "
              f"(+2 MiB): memory is reused, nothing accumulates")
        check(after2 <= max(after1, peak1) + (2 << 20),
              f"VmRSS after the second wave {after2 / 1048576:.1f} MiB (before the attack "
              f"{base / 1048576:.1f}, peak {max(peak1, peak2) / 1048576:.1f})")
    # the per-address counts of the flood were released: a flood source is served in full
    held = []
    try:
        for _ in range(MAX_PER_IP):
            held.append(Conn(idle_source(0), challenge=False))
        check(all(h.nonce for h in held),
              f"{idle_source(0)} is served {MAX_PER_IP} connections again after its "
              f"{IDLE_PER_SOURCE} silent ones were dropped")
    except OSError as e:
        bad(f"connecting again from {idle_source(0)}: {e}")
    finally:
        for h in held:
            h.close()


main()
print(f"hostile: {FAILS[0]} failure(s)", flush=True)
sys.exit(min(FAILS[0], 100))
