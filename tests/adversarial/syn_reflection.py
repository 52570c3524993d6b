#!/usr/bin/env python3
"""SYN reflection through the rendezvous (issue 12, part 1): raw peers that declare endpoints of
a host that never took part, and the observers that count what reaches it.
Usage: syn_reflection.py MODE ARGS...
  filter PORT PROBE6_PORT      raw checks of what the server hands out (ok/FAIL lines):
                               self-declared LAN and IPv6 endpoints of a peer behind another
                               public address are not passed on; an IPv6 endpoint proven by a
                               probe over IPv6 ([::1]:PROBE6_PORT) is, as punch.observed6
  attacker PORT SRC ID EP...   registers ID from source address SRC with endpoints EP..., prints
                               "registered" and holds the connection (reading and dropping what
                               comes) until killed or 60 s
  victim ADDR PORT OUT SECS    listens on ADDR:PORT for SECS seconds, accepts every connection
                               and resets it at once; writes the number accepted to OUT
Every wait is bounded."""
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import tpauth  # noqa: E402

MODE = sys.argv[1]
FAILS = 0


def check(cond, what):
    global FAILS
    if not cond:
        FAILS += 1
    print(f"{'ok  ' if cond else 'FAIL'} [syn_reflection {MODE}] {what}", flush=True)
    return cond


class Conn(tpauth.LineConn):
    def __init__(self, port, src="127.0.0.1", family=socket.AF_INET, dst="127.0.0.1", bind=0):
        self.s = socket.socket(family, socket.SOCK_STREAM)
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.s.bind((src, bind))
        self.s.settimeout(5)
        self.s.connect((dst, port))
        self.buf = b""
        ch = self.line()
        if not tpauth.is_challenge(ch):
            raise SystemExit(f"first line {ch!r}, not a challenge")
        self.nonce = ch["nonce"]

    def register(self, ident_id, endpoints):
        self.msg(tpauth.hello_msg(tpauth.Identity(ident_id), self.nonce, ident_id, endpoints))
        w = self.line()
        if not isinstance(w, dict) or w.get("type") != "welcome":
            raise SystemExit(f"{ident_id}: hello answered with {w!r}")
        return w

    def punch(self):
        """The next punch line (skipping anything else), or None."""
        end = time.time() + 5
        while time.time() < end:
            m = self.line(timeout=max(0.1, end - time.time()))
            if m is None:
                return None
            if m.get("type") == "punch":
                return m
        return None


def host_of(ep):
    return ep.rsplit(":", 1)[0].strip("[]")


def filter_mode(port, probe6_port):
    tag = str(os.getpid())
    victim4, victim6 = "127.0.0.5:9", "[2001:db8::5]:9"
    # the attacker, behind another public address than alice (127.0.0.2 vs 127.0.0.1)
    mal = Conn(port, src="127.0.0.2")
    mal.register("mal-" + tag, [victim4, victim6])
    alice = Conn(port)
    alice.register("alice-" + tag, [])
    alice.msg({"type": "connect", "target": "mal-" + tag})
    p = alice.punch()
    if not check(p is not None, f"alice gets a punch for the attacker: {p}"):
        return
    eps = p.get("endpoints", [])
    check(victim4 not in eps, f"the attacker's LAN endpoint {victim4} is not passed to a peer "
          f"behind another public address (endpoints {eps})")
    check(victim6 not in eps and "observed6" not in p,
          f"the attacker's IPv6 endpoint {victim6}, never observed, is not passed on "
          f"(endpoints {eps}, observed6 {p.get('observed6')})")
    obs = host_of(p["observed"])
    check(all(host_of(e) == obs for e in eps),
          f"every endpoint passed on is at the attacker's observed address {obs}: {eps}")
    mal.s.close()
    alice.s.close()

    # the same attacker behind alice's public address: its LAN endpoints are passed on (the
    # peer then spends its small budget on them), its unproven IPv6 one still is not
    mal = Conn(port)
    mal.register("mal2-" + tag, [victim4, victim6])
    alice = Conn(port)
    alice.register("alice2-" + tag, [])
    alice.msg({"type": "connect", "target": "mal2-" + tag})
    p = alice.punch() or {}
    eps = p.get("endpoints", [])
    check(victim4 in eps, f"behind the same public address the LAN endpoint is passed on: {eps}")
    check(victim6 not in eps, f"... but not the unproven IPv6 endpoint: {eps}")
    mal.s.close()
    alice.s.close()

    # an IPv6 endpoint proven by a probe over IPv6 from it: passed on, as observed6
    bob = Conn(port)
    w = bob.register("bob6-" + tag, ["[2001:db8::9]:9"])
    if not check("probe6" in w and w.get("probe_token"),
                 f"welcome over IPv4 names the server's IPv6 probe listener: {w}"):
        return
    check(w["probe6"] == f"[::1]:{probe6_port}", f"probe6 is [::1]:{probe6_port}: {w['probe6']}")
    pr = Conn(probe6_port, src="::1", family=socket.AF_INET6, dst="::1")
    my6 = pr.s.getsockname()[1]
    pr.msg({"type": "probe", "version": 1, "token": w["probe_token"]})
    o = pr.line()
    check(isinstance(o, dict) and o.get("type") == "observed" and "mapping" not in o,
          f"the IPv6 probe is answered, without an IPv4 mapping verdict: {o}")
    pr.s.close()
    alice = Conn(port)
    alice.register("alice6-" + tag, [])
    alice.msg({"type": "connect", "target": "bob6-" + tag})
    p = alice.punch() or {}
    check(p.get("observed6") == f"[::1]:{my6}",
          f"the proven IPv6 endpoint is passed on as observed6 [::1]:{my6}: {p.get('observed6')}")
    check("[2001:db8::9]:9" not in p.get("endpoints", []),
          f"the declared but unproven [2001:db8::9]:9 is not: {p.get('endpoints')}")


def attacker_mode(port, src, ident_id, eps):
    c = Conn(port, src=src)
    c.register(ident_id, eps)
    print("registered", flush=True)
    end = time.time() + 60
    while time.time() < end:
        m = c.line(timeout=1)
        if m is None and c.closed(timeout=0.01):
            return
        if isinstance(m, dict) and m.get("type") == "ping":
            c.msg({"type": "pong", "seq": m["seq"]})


def victim_mode(addr, port, out, secs):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(128)
    s.settimeout(0.2)
    n = 0
    with open(out, "w") as f:
        f.write("0\n")
    end = time.time() + secs
    while time.time() < end:
        try:
            c, _ = s.accept()
        except socket.timeout:
            continue
        n += 1
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
        with open(out, "w") as f:
            f.write(f"{n}\n")
    with open(out, "w") as f:
        f.write(f"{n}\n")


if MODE == "filter":
    filter_mode(int(sys.argv[2]), int(sys.argv[3]))
elif MODE == "attacker":
    attacker_mode(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:])
elif MODE == "victim":
    victim_mode(sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5]))
else:
    raise SystemExit(__doc__)
sys.exit(FAILS)
