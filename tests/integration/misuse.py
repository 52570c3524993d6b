#!/usr/bin/env python3
"""Protocol misuse against a running tcpunch-rendezvous: each bad input must get one `error`
line with the right code; fatal errors close the connection, non-fatal ones keep it usable.
Usage: misuse.py HOST PORT [HELLO_TIMEOUT KEEPALIVE]   exit status = number of failures."""
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpauth  # noqa: E402

HOST, PORT = sys.argv[1], int(sys.argv[2])
HELLO_TIMEOUT = float(sys.argv[3]) if len(sys.argv) > 3 else 0
KEEPALIVE = float(sys.argv[4]) if len(sys.argv) > 4 else 0
R = tpauth.Report("misuse")
ok, bad = R.ok, R.bad
uid = tpauth.id_maker(lambda: int(time.time() * 1000) % 100000)


class Conn(tpauth.LineConn):
    # a line beyond the protocol's limit is not a valid message, even when it is JSON
    max_line = 4096

    def __init__(self):
        super().__init__(socket.create_connection((HOST, PORT), timeout=5))
        # the server speaks first: every connection starts with a fresh challenge
        if self.read_challenge() is None:
            bad(f"first line {self.first!r}, want a challenge")
            self.nonce = "A" * 43 + "="


def expect_error(c, what, code, fatal):
    m = c.line()
    if m is None:
        bad(f"{what}: no reply (want error {code})")
        return False
    if not isinstance(m, dict) or m.get("type") != "error":
        bad(f"{what}: reply {m!r}, want error {code}")
        return False
    good = True
    if m.get("code") != code:
        bad(f"{what}: error code {m.get('code')!r}, want {code!r} (message {m.get('message')!r})")
        good = False
    if not isinstance(m.get("message"), str) or not m["message"]:
        bad(f"{what}: error without a message: {m!r}")
        good = False
    f = m.get("fatal", True)
    if f is not fatal:
        bad(f"{what}: fatal={f!r}, want {fatal}")
        good = False
    extra = set(m) - {"type", "code", "message", "fatal"}
    if extra:
        bad(f"{what}: unexpected fields {extra}")
        good = False
    if fatal:
        if c.closed():
            if good:
                ok(f"{what}: error {code}, connection closed")
        else:
            bad(f"{what}: fatal error {code} but the connection stayed open")
            good = False
    elif good:
        ok(f"{what}: error {code} (non-fatal)")
    return good


def one_shot(what, data, code, fatal=True):
    c = Conn()
    c.send(data)
    expect_error(c, what, code, fatal)
    c.close()


def hello(c, ident, **extra):
    c.msg(tpauth.hello_msg(tpauth.Identity(ident), c.nonce, ident, ["10.0.0.1:1234"], **extra))


def registered(ident):
    """A connection that completed hello/welcome; checks the welcome."""
    c = Conn()
    hello(c, ident)
    w = c.line()
    if not isinstance(w, dict) or w.get("type") != "welcome":
        bad(f"hello as {ident}: reply {w!r}, want welcome")
        return c
    want_obs = "%s:%d" % c.s.getsockname()[:2]
    if w.get("id") != ident or w.get("version") != 1 or w.get("observed") != want_obs or \
            not isinstance(w.get("keepalive"), int) or w["keepalive"] < 1:
        bad(f"welcome for {ident}: {w!r} (want id {ident}, version 1, observed {want_obs})")
    return c


# ---- malformed lines before hello: all fatal ----
one_shot("garbage", b"garbage\n", "bad-json")
one_shot("binary garbage", b"\x00\xff\xfe{{{\n", "bad-json")
one_shot("5000-byte line", b"x" * 5000 + b"\n", "line-too-long")
one_shot("5000-byte JSON line", b'{"type":"hello","id":"' + b"a" * 4980 + b'"}\n', "line-too-long")
one_shot("5000 bytes without any newline", b"y" * 5000, "line-too-long")
one_shot("unknown type", '{"type":"bogus"}\n', "unknown-type")
one_shot("not an object", "[1,2]\n", "bad-message")
one_shot("a number", "42\n", "bad-message")
one_shot("no type", '{"id":"x"}\n', "bad-message")
one_shot("non-string type", '{"type":5}\n', "bad-message")
one_shot("server-to-peer type", '{"type":"welcome","version":1,"id":"x","observed":"1.2.3.4:5",'
         '"keepalive":60}\n', "unexpected-type")
one_shot("peer-to-peer type", '{"type":"shake","version":1,"session":"' + "0" * 32 +
         '","from":"a","to":"b"}\n', "unexpected-type")
one_shot("connect before hello", '{"type":"connect","target":"x"}\n', "not-registered")
one_shot("duplicate keys", '{"type":"hello","version":1,"version":1,"id":"x","endpoints":[]}\n',
         "bad-json")
one_shot("hello with a bad id", '{"type":"hello","version":1,"id":"a b","endpoints":[]}\n', "bad-id")
one_shot("hello with a 65-char id", '{"type":"hello","version":1,"id":"' + "i" * 65 +
         '","endpoints":[]}\n', "bad-id")
one_shot("hello version 2", '{"type":"hello","version":2,"id":"x","endpoints":[]}\n', "bad-version")
one_shot("hello with an unknown field", '{"type":"hello","version":1,"id":"x","endpoints":[],'
         '"color":"red"}\n', "bad-field")
one_shot("hello without endpoints", '{"type":"hello","version":1,"id":"x"}\n', "bad-field")
one_shot("hello with a host name endpoint", '{"type":"hello","version":1,"id":"x",'
         '"endpoints":["example.com:80"]}\n', "bad-endpoint")
one_shot("hello with port 0", '{"type":"hello","version":1,"id":"x",'
         '"endpoints":["1.2.3.4:0"]}\n', "bad-endpoint")
one_shot("hello with 9 endpoints", json.dumps(
    {"type": "hello", "version": 1, "id": "x",
     "endpoints": ["10.0.0.%d:80" % i for i in range(1, 10)]}) + "\n", "too-many-endpoints")
one_shot("NUL in a string", '{"type":"hello","version":1,"id":"a\\u0000b","endpoints":[]}\n',
         "bad-json")

# ---- after hello ----
me = uid("misuse")
c = registered(me)
ok(f"hello/welcome as {me}")
c.msg({"type": "ping", "seq": 41})
m = c.line()
if m == {"type": "pong", "seq": 41}:
    ok("ping 41 -> pong 41")
else:
    bad(f"ping 41: reply {m!r}")
c.msg({"type": "connect", "target": uid("nobody")})
expect_error(c, "connect to an unknown peer", "peer-not-found", False)
c.msg({"type": "connect", "target": me})
expect_error(c, "connect to ourselves", "self-connect", False)
# still registered and usable after the non-fatal errors
c.msg({"type": "ping", "seq": 9007199254740993})
m = c.line()
if m == {"type": "pong", "seq": 9007199254740993}:
    ok("still usable after non-fatal errors (big seq echoed)")
else:
    bad(f"ping after non-fatal errors: reply {m!r}")
c.msg({"type": "pong", "seq": 1})  # an unsolicited pong is harmless
hello(c, me)
expect_error(c, "second hello", "already-registered", True)
c.close()

# the id is free again once its connection is gone
time.sleep(0.2)
c = registered(me)
ok(f"{me} can register again after its connection closed")

# id taken while the first connection is registered
d = Conn()
hello(d, me)
expect_error(d, "hello with an id in use", "id-taken", True)
d.close()
# garbage after hello is just as fatal
c.send(b"not json at all\n")
expect_error(c, "garbage after hello", "bad-json", True)
c.close()

# pipelined: hello + ping in one write
c = Conn()
pid = uid("pipe")
c.send(json.dumps(tpauth.hello_msg(tpauth.Identity(pid), c.nonce, pid)) + "\n" +
       '{"type":"ping","seq":3}\n')
m1, m2 = c.line(), c.line()
if isinstance(m1, dict) and m1.get("type") == "welcome" and m2 == {"type": "pong", "seq": 3}:
    ok("hello and ping in one segment both answered")
else:
    bad(f"pipelined hello+ping: replies {m1!r}, {m2!r}")
# a line split across many small writes
c.send(b'{"type":')
time.sleep(0.05)
c.send(b'"ping","se')
time.sleep(0.05)
c.send(b'q":4}\n')
m = c.line()
if m == {"type": "pong", "seq": 4}:
    ok("a line split over three writes")
else:
    bad(f"split line: reply {m!r}")
c.close()

# ---- timeouts (when the server was started with short ones) ----
def expect_timeout(c, limit, code, what):
    """c, saying nothing, gets the error code after limit seconds (give or take) and is closed."""
    t0 = time.time()
    m = c.line(timeout=limit + 5)
    dt = time.time() - t0
    if isinstance(m, dict) and m.get("type") == "error" and m.get("code") == code \
            and limit - 0.5 <= dt <= limit + 3 and c.closed():
        ok(f"{what}: {code} after {dt:.1f} s, closed")
    else:
        bad(f"{what}: after {dt:.1f} s got {m!r} (want {code} after ~{limit} s)")
    c.close()


if HELLO_TIMEOUT:
    expect_timeout(Conn(), HELLO_TIMEOUT, "hello-timeout", "silent connection")
if KEEPALIVE:
    expect_timeout(registered(uid("idle")), KEEPALIVE, "keepalive-timeout", "idle registered peer")

print(f"misuse: {R.fails} failure(s)")
sys.exit(R.status())
