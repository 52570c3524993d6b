#!/usr/bin/env python3
"""The server's side of resumable sessions (PROTOCOL.md section 18), spoken raw to the real
tcpunch-rendezvous: challenge "resume", hello.features passed on as the other peer's
punch.peer_features, connect.resume copied into both punches, hello.replace. Exit status: the
number of failed checks.

  resume_srv.py local HOST PORT        a server with its defaults (resume offered)
  resume_srv.py off HOST PORT          a server started with --no-resume
  resume_srv.py secret HOST PORT FILE  a server with --secret-file FILE: admit covers the members
  resume_srv.py cluster HOST PORT_A PORT_B   two instances of one cluster
  resume_srv.py fakeserver PORT COUNT_FILE   a server that welcomes, then says `replaced`
"""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tpauth  # noqa: E402
from tpauth import Identity  # noqa: E402

MODE = sys.argv[1]
R = tpauth.Report(f"resume {MODE}")
uid = tpauth.id_maker(os.getpid())
ROOT = "0123456789abcdef0123456789abcdef"


class Conn(tpauth.LineConn):
    def __init__(self, host, port):
        super().__init__(socket.create_connection((host, port), timeout=5))
        self.read_challenge()

    def hello(self, ident, ident_id, **kw):
        self.msg(tpauth.hello_msg(ident, self.nonce, ident_id, **kw))
        return self.next_msg()


def register(host, port, ident_id, ident=None, **kw):
    """A connection registered as ident_id (checked), with hello members kw."""
    c = Conn(host, port)
    m = c.hello(ident or Identity(ident_id), ident_id, **kw)
    R.check(isinstance(m, dict) and m.get("type") == "welcome",
            f"{ident_id} registers (hello {sorted(kw)}): {m}")
    return c


def is_error(m, code):
    return isinstance(m, dict) and m.get("type") == "error" and m.get("code") == code and \
        m.get("fatal", True) is True


def punches(a, b, target, **kw):
    """a connects to target (b's id) with connect members kw: (a's punch, b's punch)."""
    a.msg({"type": "connect", "target": target} | kw)
    pa, pb = a.next_msg(), b.next_msg()
    ok = all(isinstance(p, dict) and p.get("type") == "punch" for p in (pa, pb))
    R.check(ok, f"connect to {target} {sorted(kw)}: both get a punch ({pa}, {pb})")
    return (pa, pb) if ok else ({}, {})


def t_challenge(host, port, offered):
    c = Conn(host, port)
    feats = c.first.get("features", []) if isinstance(c.first, dict) else []
    if offered:
        R.check("resume" in feats, f"the challenge lists resume: {c.first}")
    else:
        R.check("resume" not in feats, f"--no-resume: the challenge does not list it: {c.first}")
    R.check("replace" in feats, f"the challenge lists replace, resume or not: {c.first}")
    c.close()


def t_features(host, pa, pb):
    """peer_features from the other's hello into each punch, absent when it sent none; the
    connect's resume root in both punches (pa, pb: the ports A and B register at)."""
    ia, ib, ic = uid("fa"), uid("fb"), uid("fc")
    a = register(host, pa, ia, features=["resume"])
    b = register(host, pb, ib)
    c = register(host, pb, ic, features=["resume", "x-later"])
    p1, p2 = punches(a, b, ib, resume=ROOT)
    R.check("peer_features" not in p1, f"A's punch: B announced nothing, no peer_features: {p1}")
    R.check(p2.get("peer_features") == ["resume"], f"B's punch carries A's features: {p2}")
    R.check(p1.get("resume") == ROOT and p2.get("resume") == ROOT,
            "connect.resume is punch.resume in both punches")
    p1, p2 = punches(b, a, ia)
    R.check(p1.get("peer_features") == ["resume"] and "peer_features" not in p2,
            f"the other way round: B's punch has A's features, A's none ({p1}, {p2})")
    R.check("resume" not in p1 and "resume" not in p2, "no connect.resume: no punch.resume")
    p1, p2 = punches(c, a, ia, resume=ROOT)
    R.check(p1.get("peer_features") == ["resume"] and p2.get("peer_features") == ["resume"],
            f"both announce: each punch has the other's (unknown names dropped): {p1}, {p2}")
    for x in (a, b, c):
        x.close()


def t_features_off(host, port):
    ia, ib = uid("oa"), uid("ob")
    a = register(host, port, ia, features=["resume"])
    b = register(host, port, ib, features=["resume"])
    p1, p2 = punches(a, b, ib, resume=ROOT)
    R.check("peer_features" not in p1 and "peer_features" not in p2,
            "--no-resume: no punch carries peer_features")
    R.check("resume" not in p1 and "resume" not in p2, "--no-resume: no punch carries resume")
    a.close()
    b.close()


def t_replace(host, port, port2, offered):
    """replace with the same key takes the id (the old connection gets replaced), with or
    without resume offered (offered: the server was started without --no-resume); another
    key, or no replace, gets id-taken. port2: where the newer connection registers."""
    me = uid("rep")
    ident = Identity(me)
    old = register(host, port, me, ident)
    if port == port2:
        # (across instances a hello without replace is taken as before: both stay registered
        # and the directory names the newer, so it is not tried there)
        c = Conn(host, port2)
        m = c.hello(ident, me)
        R.check(is_error(m, "id-taken"), f"the same key without replace: id-taken ({m})")
        c.close()
    c = Conn(host, port2)
    m = c.hello(Identity(me + "-other"), me, replace=True)
    # the id's owner is its first key (in memory, --id-db or Redis), checked before the
    # registry: another key is refused as before replace existed, with id-owned
    R.check(is_error(m, "id-owned"), f"replace with another key: id-owned as before ({m})")
    c.close()
    if port != port2 and old.next_msg(0.5) is not None:
        R.bad("the old connection heard something after the refused replace")
    # an auxiliary connection never replaces: it registers aside, the old one keeps the id
    c = Conn(host, port2)
    m = c.hello(ident, me, aux=True, replace=True)
    R.check(isinstance(m, dict) and m.get("type") == "welcome",
            f"an auxiliary hello with replace registers aside ({m})")
    R.check(old.next_msg(0.5) is None and not old.closed(0.3),
            "and the old connection keeps the id (aux never replaces)")
    c.close()
    new = Conn(host, port2)
    m = new.hello(ident, me, replace=True)
    # offered or not (--no-resume): replace is taken alike, the challenge lists "replace"
    R.check(isinstance(m, dict) and m.get("type") == "welcome",
            f"replace with the same key: the new connection registers ({m})")
    m = old.next_msg(3.0)
    R.check(is_error(m, "replaced"), f"the old connection gets replaced, fatal ({m})")
    R.check(old.closed(3.0), "and is closed")
    # the id is the new connection's: a peer connecting to it reaches the new one
    ip = uid("rq")
    q = register(host, port, ip)
    p1, p2 = punches(q, new, me)
    R.check(p2.get("peer") == ip, "a connect to the id reaches the new connection")
    # a fresh hello without replace is still refused
    c = Conn(host, port2)
    m = c.hello(ident, me)
    R.check(is_error(m, "id-taken"), f"after it, a hello without replace: id-taken ({m})")
    for x in (c, q, new):
        x.close()


def t_secret(host, port, path):
    """With a secret, the admit covers features and replace: the right one registers (and the
    replace works), one made without them is not admitted."""
    sec = open(path, "rb").read()
    me = uid("sec")
    ident = Identity(me)
    c = Conn(host, port)
    m = tpauth.hello_msg(ident, c.nonce, me)  # admit over the members without features
    m["admit"] = tpauth.admit(sec, c.nonce, m)
    m["features"] = ["resume"]
    c.msg(m)
    R.check(is_error(c.next_msg(), "not-admitted"), "an admit that does not cover features: refused")
    c.close()
    old = register(host, port, me, ident, features=["resume"], secret=sec)
    new = register(host, port, me, ident, features=["resume"], replace=True, secret=sec)
    R.check(is_error(old.next_msg(3.0), "replaced"), "with a secret, replace works the same")
    new.close()


def fakeserver(port, count_file):
    """Welcomes every peer, then tells it `replaced`; counts the connections in count_file."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(8)
    ls.settimeout(1.0)
    n, end = 0, time.time() + 30
    while time.time() < end:
        try:
            s, peer = ls.accept()
        except socket.timeout:
            continue
        n += 1
        with open(count_file, "w") as f:
            f.write(f"{n}\n")
        c = tpauth.LineConn(s)
        c.msg({"type": "challenge", "version": 1, "nonce": tpauth.b64(os.urandom(32)),
               "features": ["resume"]})
        h = c.line()
        if not isinstance(h, dict) or h.get("type") != "hello":
            c.close()
            continue
        c.msg({"type": "welcome", "version": 1, "id": h["id"],
               "observed": f"{peer[0]}:{peer[1]}", "keepalive": 60})
        time.sleep(0.3)
        c.msg({"type": "error", "code": "replaced", "fatal": True,
               "message": f"a newer connection registered {h['id']} with the same key"})
        time.sleep(0.2)
        c.close()
    return 0


def main():
    if MODE == "fakeserver":
        return fakeserver(int(sys.argv[2]), sys.argv[3])
    host, port = sys.argv[2], int(sys.argv[3])
    if MODE == "local":
        t_challenge(host, port, True)
        t_features(host, port, port)
        t_replace(host, port, port, True)
    elif MODE == "off":
        t_challenge(host, port, False)
        t_features_off(host, port)
        t_replace(host, port, port, False)
    elif MODE == "secret":
        t_secret(host, port, sys.argv[4])
    elif MODE == "cluster":
        port2 = int(sys.argv[4])
        t_features(host, port, port2)
        t_features(host, port2, port)
        t_replace(host, port, port2, True)
    return R.status()


if __name__ == "__main__":
    sys.exit(main())
