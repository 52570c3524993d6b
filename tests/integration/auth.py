#!/usr/bin/env python3
"""Registration proof, id ownership, the allowlist, the admission secret and the server's limits,
driven with raw sockets on loopback (PROTOCOL.md, "Challenge", "Errors", "Limits").
Usage: auth.py MODE ARGS...
  keys NAME...                       print "NAME KEY" for the test identity of each NAME
  basic HOST PORT OWNED_ID           any server (with --id-db): signatures, ownership, candidates;
                                     registers OWNED_ID with the key of Identity(OWNED_ID)
  restart HOST PORT OWNED_ID         the same server restarted on the same --id-db
  authorized HOST PORT PID FILE      --authorized FILE listing az-alice and az-bob
  secret HOST PORT PROBE_PORT FILE   --secret-file FILE and --probe-listen PROBE_PORT
  limits HOST PORT                   --max-per-ip 3 --rate-per-ip 5 --connect-rate 2
Exit status = number of failures. Every wait is bounded."""
import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpauth  # noqa: E402
from tpauth import Identity  # noqa: E402

MODE = sys.argv[1]
R = tpauth.Report(f"auth {MODE}")
ok, bad, check = R.ok, R.bad, R.check
uid = tpauth.id_maker(os.getpid())


class Conn(tpauth.LineConn):
    """A connection whose first line (normally the challenge) is in self.first."""

    def __init__(self, host, port, challenge=True):
        super().__init__(socket.create_connection((host, port), timeout=5))
        if self.read_challenge() is None and challenge:
            bad(f"first line {self.first!r}, want a challenge")

    def hello(self, ident, ident_id, **kw):
        self.msg(tpauth.hello_msg(ident, self.nonce, ident_id, **kw))
        return self.line()


def is_error(m, code, fatal=True):
    return isinstance(m, dict) and m.get("type") == "error" and m.get("code") == code and \
        m.get("fatal", True) is fatal and isinstance(m.get("message"), str) and m["message"]


def expect_error(c, m, code, what, fatal=True):
    if check(is_error(m, code, fatal), f"{what}: error {code} (got {m})") and fatal:
        check(c.closed(), f"{what}: the connection is closed")


def welcomed(m, ident_id):
    return isinstance(m, dict) and m.get("type") == "welcome" and m.get("id") == ident_id


def register(host, port, ident_id, ident=None, **kw):
    c = Conn(host, port)
    m = c.hello(ident or Identity(ident_id), ident_id, **kw)
    check(welcomed(m, ident_id), f"{ident_id} registers (got {m})")
    return c


# ---- basic: the challenge, signatures, ownership, candidates ----

def t_challenge(host, port):
    a, b = Conn(host, port), Conn(host, port)
    check(a.nonce and b.nonce and a.nonce != b.nonce, "every connection gets a fresh 32-byte nonce")
    check(set(a.first) == {"type", "version", "nonce", "features"},
          f"challenge members: {sorted(a.first)}")
    # the default server plans birthday punches (PROTOCOL.md section 17), offers resumable
    # sessions (section 18), takes traversal reports (section 19), hello.replace (5.1) and
    # wormhole codes (section 20)
    check(a.first.get("features") == ["birthday", "resume", "report", "replace", "code"],
          f"challenge features: {a.first.get('features')}")
    a.close()
    b.close()


def t_signatures(host, port):
    me, other = Identity("sig-me"), Identity("sig-other")
    ident = uid("sig")
    c = Conn(host, port)
    c.msg({"type": "hello", "version": 1, "id": ident, "endpoints": []})
    expect_error(c, c.line(), "bad-signature", "hello without key and sig")
    c = Conn(host, port)
    m = tpauth.hello_msg(me, c.nonce, ident)
    del m["sig"]
    c.msg(m)
    expect_error(c, c.line(), "bad-signature", "hello with a key but no sig")
    c = Conn(host, port)
    m = tpauth.hello_msg(me, c.nonce, ident)
    m["key"] = other.key
    c.msg(m)
    expect_error(c, c.line(), "bad-signature", "a signature by another key")
    c = Conn(host, port)
    c.msg(tpauth.hello_msg(me, c.nonce, ident + "x") | {"id": ident})
    expect_error(c, c.line(), "bad-signature", "a signature over another id")
    # a hello recorded on one connection is worthless on the next: the nonce changed
    old = Conn(host, port)
    replay = tpauth.hello_msg(me, old.nonce, ident)
    old.close()
    c = Conn(host, port)
    c.msg(replay)
    expect_error(c, c.line(), "bad-signature", "a hello replayed on a new connection")
    c = Conn(host, port)
    c.msg(tpauth.hello_msg(me, c.nonce, ident) | {"sig": "AAAA"})
    expect_error(c, c.line(), "bad-field", "a sig that is not 64 bytes of base64")
    # none of the refused hellos bound the id: any key may still take it
    c = register(host, port, ident, other)
    c.close()


def t_ownership(host, port, owned):
    owner, thief = Identity(owned), Identity(owned + "-thief")
    c = register(host, port, owned, owner)
    d = Conn(host, port)
    expect_error(d, d.hello(thief, owned), "id-owned", "another key while the owner is online")
    d = Conn(host, port)
    expect_error(d, d.hello(owner, owned), "id-taken", "the owner's key on a second connection")
    c.close()
    time.sleep(0.3)
    d = Conn(host, port)
    expect_error(d, d.hello(thief, owned), "id-owned", "another key after the owner left")
    c = register(host, port, owned, owner)
    c.close()


def t_punch_key(host, port):
    ia, ib = uid("pk-a"), uid("pk-b")
    a, b = register(host, port, ia), register(host, port, ib)
    a.msg({"type": "connect", "target": ib})
    pa, pb = a.line(), b.line()
    check(isinstance(pa, dict) and pa.get("key") == Identity(ib).key,
          "the initiator's punch carries the responder's registered key")
    check(isinstance(pb, dict) and pb.get("key") == Identity(ia).key,
          "the responder's punch carries the initiator's registered key")
    a.close()
    b.close()


def t_candidates(host, port):
    for ep in ["224.0.0.1:5000", "239.255.255.250:1900", "255.255.255.255:80", "0.0.0.0:80",
               "169.254.169.254:80", "240.0.0.1:80", "[ff02::1]:80", "[::]:80", "[fe80::1]:80",
               "[::ffff:224.0.0.1]:80"]:
        ident = uid("cand")
        c = Conn(host, port)
        m = c.hello(Identity(ident), ident, endpoints=["10.0.0.1:4000", ep])
        expect_error(c, m, "bad-endpoint", f"candidate {ep}")
    # unicast private, public and (from a loopback peer) loopback candidates are fine
    ident = uid("cand-ok")
    c = register(host, port, ident, endpoints=["10.0.0.1:4000", "192.168.1.2:4000",
                                                "203.0.113.7:4000", "127.0.0.1:4000",
                                                "[2001:db8::1]:4000", "[::1]:4000"])
    c.close()


def basic(host, port, owned):
    t_challenge(host, port)
    t_signatures(host, port)
    t_ownership(host, port, owned)
    t_punch_key(host, port)
    t_candidates(host, port)


def restart(host, port, owned):
    d = Conn(host, port)
    expect_error(d, d.hello(Identity(owned + "-thief"), owned), "id-owned",
                 "after a restart, another key for an id the owner registered before")
    c = register(host, port, owned, Identity(owned))
    c.close()


# ---- authorized ----

def authorized(host, port, pid, path):
    alice, bob, eve = Identity("az-alice"), Identity("az-bob"), Identity("az-eve")
    a = register(host, port, "az-alice", alice)
    c = Conn(host, port)
    expect_error(c, c.hello(eve, "az-bob"), "not-authorized", "a listed id with another key")
    c = Conn(host, port)
    expect_error(c, c.hello(eve, "az-eve"), "not-authorized", "an id that is not listed")
    # the list changes: bob stays, alice goes, eve comes; SIGHUP drops alice's registration
    with open(path, "w") as f:
        f.write(f"# changed\naz-bob {bob.key}\naz-eve {eve.key}\n")
    os.kill(pid, signal.SIGHUP)
    expect_error(a, a.line(), "not-authorized", "after SIGHUP, a peer no longer listed")
    e = register(host, port, "az-eve", eve)
    # a broken list on SIGHUP leaves the previous one in force
    with open(path, "w") as f:
        f.write(f"az-bob {bob.key}\nbroken line\n")
    os.kill(pid, signal.SIGHUP)
    time.sleep(0.3)
    e.msg({"type": "ping", "seq": 1})
    check(e.line() == {"type": "pong", "seq": 1}, "a bad list on SIGHUP keeps the old one")
    b = register(host, port, "az-bob", bob)
    c = Conn(host, port)
    expect_error(c, c.hello(alice, "az-alice"), "not-authorized", "alice is still out")
    b.close()
    e.close()


# ---- secret ----

def secret(host, port, probe_port, path):
    with open(path, "rb") as f:
        sec = f.read()
    ident = uid("sec")
    me = Identity(ident)
    c = Conn(host, port)
    expect_error(c, c.hello(me, ident), "not-admitted", "a hello without admit")
    c = Conn(host, port)
    expect_error(c, c.hello(me, ident, secret=sec + b"x"), "not-admitted", "a wrong secret")
    c = Conn(host, port)
    c.send(b"garbage\n")
    expect_error(c, c.line(), "not-admitted", "garbage: not-admitted, not a parse error")
    old = Conn(host, port)
    c = Conn(host, port)
    # the whole hello as it will be sent, but its admit made for the other connection's nonce
    stale = tpauth.admit(sec, old.nonce, tpauth.hello_msg(me, c.nonce, ident))
    old.close()
    expect_error(c, c.hello(me, ident, admit=stale), "not-admitted",
                 "an admit made for another connection's nonce")
    # an admit made for another line on this very connection: other endpoints, another id
    c = Conn(host, port)
    other = tpauth.admit(sec, c.nonce, tpauth.hello_msg(me, c.nonce, ident,
                                                        endpoints=["192.0.2.7:4000"]))
    expect_error(c, c.hello(me, ident, admit=other), "not-admitted",
                 "an admit made for the same hello with other endpoints")
    c = Conn(host, port)
    other = tpauth.admit(sec, c.nonce, tpauth.hello_msg(me, c.nonce, ident + "x"))
    expect_error(c, c.hello(me, ident, admit=other), "not-admitted",
                 "an admit made for a hello with another id")
    c = Conn(host, port)
    other = tpauth.admit(sec, c.nonce, tpauth.hello_msg(me, c.nonce, ident, aux=True))
    expect_error(c, c.hello(me, ident, admit=other), "not-admitted",
                 "an admit made for the auxiliary version of the hello")
    c = Conn(host, port)
    c.msg({"type": "relay", "version": 1, "session": "0" * 32, "token": "0" * 32})
    expect_error(c, c.line(), "not-admitted", "a relay line without admit")
    c = Conn(host, port)
    relay = {"type": "relay", "version": 1, "session": "0" * 32, "token": "0" * 32}
    c.msg(dict(relay, admit=tpauth.admit(sec, c.nonce, dict(relay, token="1" * 32))))
    expect_error(c, c.line(), "not-admitted", "a relay line with an admit for another token")
    c = Conn(host, port)
    c.msg(tpauth.with_admit(sec, c.nonce, dict(relay)))
    expect_error(c, c.line(), "relay-refused", "a relay line with admit gets to the relay")
    c = Conn(host, probe_port)
    c.msg({"type": "probe", "version": 1})
    expect_error(c, c.line(), "not-admitted", "a probe without admit")
    c = Conn(host, probe_port)
    c.msg({"type": "probe", "version": 1,
           "admit": tpauth.admit(sec, c.nonce, {"type": "probe", "token": "2" * 32})})
    expect_error(c, c.line(), "not-admitted", "a probe whose admit was made for another token")
    c = Conn(host, probe_port)
    c.msg(tpauth.with_admit(sec, c.nonce, {"type": "probe", "version": 1}))
    m = c.line()
    check(isinstance(m, dict) and m.get("type") == "observed", f"a probe with admit: {m}")
    # nothing was bound by the refused hellos: another key takes the id
    c = register(host, port, ident, Identity(ident + "-2"), secret=sec)
    c.msg({"type": "ping", "seq": 5})
    check(c.line() == {"type": "pong", "seq": 5}, "an admitted peer works as usual")
    c.close()


# ---- limits ----

def limits(host, port):
    held = [Conn(host, port) for _ in range(3)]
    c = Conn(host, port, challenge=False)
    expect_error(c, c.first, "too-many-connections", "a 4th connection from one address")
    for h in held:
        h.close()
    time.sleep(1.2)  # the bucket refills
    refused = None
    for i in range(8):
        c = Conn(host, port, challenge=False)
        if c.nonce is None:
            refused = (i, c.first)
            c.close()
            break
        c.close()
    check(refused is not None and refused[0] == 5 and is_error(refused[1], "rate-limited"),
          f"the 6th new connection within a second is rate-limited (got {refused})")
    time.sleep(1.2)
    ident, target = uid("lim"), uid("nobody")
    c = register(host, port, ident)
    codes = []
    for _ in range(3):
        c.msg({"type": "connect", "target": target})
        m = c.line()
        codes.append((m or {}).get("code"))
        if m and m.get("code") == "rate-limited":
            check(m.get("fatal") is False, "connect rate-limited is not fatal")
    check(codes == ["peer-not-found", "peer-not-found", "rate-limited"],
          f"--connect-rate 2: the 3rd connect in a second is rate-limited ({codes})")
    c.msg({"type": "ping", "seq": 2})
    check(c.line() == {"type": "pong", "seq": 2}, "still registered after rate-limited")
    time.sleep(1.1)
    c.msg({"type": "connect", "target": target})
    m = c.line()
    check(m and m.get("code") == "peer-not-found", f"a second later connect works again ({m})")
    c.close()


def main():
    a = sys.argv[2:]
    if MODE == "keys":
        for name in a:
            print(name, Identity(name).key)
        return 0
    host, port = a[0], int(a[1])
    if MODE == "basic":
        basic(host, port, a[2])
    elif MODE == "restart":
        restart(host, port, a[2])
    elif MODE == "authorized":
        authorized(host, port, int(a[2]), a[3])
    elif MODE == "secret":
        secret(host, port, int(a[2]), a[3])
    elif MODE == "limits":
        limits(host, port)
    else:
        sys.exit(f"unknown mode {MODE}")
    print(f"auth {MODE}: {R.fails} failure(s)")
    return R.status()


sys.exit(main())
