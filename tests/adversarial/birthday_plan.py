#!/usr/bin/env python3
"""Birthday plans at a real server, from peers made to look hard or easy on loopback: each
probes the server's probe listener, the "hard" one from another port than its control
connection (mapping dependent), the "easy" ones from the same port (independent), each easy one
from its own loopback address (127.0.0.2, .3), so that the observed addresses differ. Then:

  plan      hard -> easy: both punches carry birthday (roles, targets, K, M as PROTOCOL.md 17)
  again     the hard peer re-issues connect 3 times at once, and easy connects back: no plan
  other     a second easy peer connects to the hard one within 10 s: no plan either
  fresh     the second easy peer connects to a second, fresh hard peer: a plan (per peer)
  nocaps    a hard peer whose hello had no birthday: no plan
  later     after 10 s, hard -> easy: a plan again

usage: birthday_plan.py PORT PROBE_PORT  (server with --birthday-k-max 128)
Prints "name value" lines. Every read is bounded in time; one wait of 10.5 s."""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from advpeer import Identity, ServerConn, is_challenge  # noqa: E402

tag = os.getpid()


def say(name, value):
    print(name, value, flush=True)


def reusable(source):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.settimeout(5)
    s.bind(source)
    return s


class Ctl(ServerConn):
    def __init__(self, host, addr):
        self.buf = b""
        self.s = reusable((host, 0))
        self.s.connect(addr)
        self.challenge = self.line(5)
        if not is_challenge(self.challenge):
            raise RuntimeError(f"no challenge: {self.challenge!r}")
        self.nonce = self.challenge["nonce"]


def probe(source, token, paddr):
    c = ServerConn.__new__(ServerConn)
    c.buf = b""
    c.s = reusable(source)
    c.s.connect(paddr)
    ch = c.line(5)
    if not is_challenge(ch):
        raise RuntimeError(f"no challenge on the probe port: {ch!r}")
    c.msg({"type": "probe", "version": 1, "token": token})
    r = c.line(5)
    c.close()
    if not r or r.get("type") != "observed":
        raise RuntimeError(f"no observed: {r!r}")
    return r.get("mapping", "none")


def peer(name, host, hard, caps, srv):
    """A registered peer at srv = (port, probe port): its control connection, id, mapping and
    observed endpoint."""
    c = Ctl(host, ("127.0.0.1", srv[0]))
    pid = f"{name}{tag}"
    extra = {"birthday": caps} if caps else {}
    w = c.register(pid, Identity(pid), **extra)
    if not w or w.get("type") != "welcome" or "probe_token" not in w:
        sys.exit(f"{name} not registered with a probe token: {w!r}")
    src = (host, 0) if hard else c.s.getsockname()
    got = probe(src, w["probe_token"], ("127.0.0.1", srv[1]))
    say(f"mapping-{name}", got)
    c.pid, c.observed = pid, w["observed"]
    return c


def punch_pair(a, b):
    """a connects to b: (a's punch, b's punch) as dicts (None when missing)."""
    pa = a.connect_to(b.pid)
    pb = b.next_msg(5)
    return pa, pb


def desc(p, observed_other):
    """'role,target-ok,k,m,ttl,pace,ports,delay' of a punch's plan, or 'none'."""
    if not p or p.get("type") != "punch":
        return f"no-punch:{p!r}"
    bd = p.get("birthday")
    if bd is None:
        return "none"
    ok = "target-ok" if bd.get("target") == observed_other == p.get("observed") else \
        f"target-{bd.get('target')}"
    return ",".join([bd.get("role", "?"), ok, str(bd.get("k")), str(bd.get("m")),
                     str(bd.get("ttl")), str(bd.get("pace_ms")),
                     "%s-%s" % tuple(bd.get("ports", ["?", "?"])), str(bd.get("easy_delay_us"))])


def main():
    srv = (int(sys.argv[1]), int(sys.argv[2]))
    hard = peer("hard", "127.0.0.1", True, {"k": 200, "m": 1000}, srv)
    easy = peer("easy", "127.0.0.2", False, {"k": 300, "m": 900}, srv)
    easy2 = peer("easyb", "127.0.0.3", False, {"k": 256, "m": 1024}, srv)
    hard2 = peer("hardb", "127.0.0.1", True, {"k": 64, "m": 64}, srv)
    nocaps = peer("nocaps", "127.0.0.1", True, None, srv)

    pa, pb = punch_pair(hard, easy)
    say("plan-hard", desc(pa, easy.observed))
    say("plan-easy", desc(pb, hard.observed))
    say("plan-direct", "yes" if pa and pa.get("direct", True) and pb.get("direct", True) else "no")
    say("plan-relay", "yes" if pa and pa.get("relay") and pb.get("relay") else "no")
    again = []
    for _ in range(3):
        pa, pb = punch_pair(hard, easy)
        again += [desc(pa, easy.observed), desc(pb, hard.observed)]
    pa, pb = punch_pair(easy, hard)
    again += [desc(pa, hard.observed), desc(pb, easy.observed)]
    say("again", "none" if set(again) == {"none"} else "|".join(again))
    pa, pb = punch_pair(easy2, hard)
    say("other", desc(pa, hard.observed) + "/" + desc(pb, easy2.observed))
    pa, pb = punch_pair(easy2, hard2)
    say("fresh-easy", desc(pa, hard2.observed))
    say("fresh-hard", desc(pb, easy2.observed))
    pa, pb = punch_pair(nocaps, easy)
    say("nocaps", desc(pa, easy.observed) + "/" + desc(pb, nocaps.observed))
    # 10 s after the first plan (and more for the re-issued connects, which made none)
    end = time.time() + 10.5
    while time.time() < end:
        for c in (hard, easy, easy2, hard2, nocaps):
            c.s.settimeout(0.05)
            m = c.line(0.05)
            if m and m.get("type") == "ping":
                c.msg({"type": "pong", "seq": m.get("seq", 0)})
        time.sleep(0.2)
    pa, pb = punch_pair(hard, easy)
    say("later-hard", desc(pa, easy.observed))
    say("later-easy", desc(pb, hard.observed))


if __name__ == "__main__":
    main()
