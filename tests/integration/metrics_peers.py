#!/usr/bin/env python3
"""tcpunch_peers_online and tcpunch_connections through every move a control connection makes
(conn.c counts them as they move): registered over IPv4 and over IPv6, an auxiliary connection
(live, not a peer), a ping (live to live again), a fatal refusal (linger), closes.

usage: metrics_peers.py PORT4 PORT6 METRICS_PORT
Prints ok/FAIL lines; exit status = number of failures. Every wait is bounded."""
import os
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "adversarial"))
from advpeer import Identity, ServerConn  # noqa: E402
import tpauth  # noqa: E402

p4, p6, pm = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
R = tpauth.Report("metrics_peers")
uid = tpauth.id_maker(os.getpid())


def scrape():
    with urllib.request.urlopen(f"http://127.0.0.1:{pm}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            out[k] = float(v)
    return out


WANT = ('tcpunch_peers_online{family="ipv4"}', 'tcpunch_peers_online{family="ipv6"}',
        'tcpunch_connections{state="hello"}', 'tcpunch_connections{state="live"}')


def expect(what, v4, v6, hello, live, wait=3.0):
    """The four gauges, polled until they are (v4, v6, hello, live) or wait runs out."""
    end, got = time.time() + wait, None
    while True:
        m = scrape()
        got = tuple(int(m.get(k, -1)) for k in WANT)
        if got == (v4, v6, hello, live) or time.time() > end:
            break
        time.sleep(0.05)
    R.check(got == (v4, v6, hello, live),
            f"{what}: ipv4/ipv6 peers, hello/live connections {got}, want {(v4, v6, hello, live)}")


def peer(port, host, ident_id, ident, **extra):
    c = ServerConn((host, port))
    w = c.register(ident_id, ident, **extra)
    R.check(isinstance(w, dict) and w.get("type") == "welcome", f"{ident_id} registered ({w})")
    return c


expect("nobody yet", 0, 0, 0, 0)
ia, ib = Identity("a"), Identity("b")
a_id, b_id = uid("a"), uid("b")
a = peer(p4, "127.0.0.1", a_id, ia)
expect("a peer over IPv4", 1, 0, 0, 1)
b = peer(p6, "::1", b_id, ib)
expect("and one over IPv6", 1, 1, 0, 2)
x = peer(p4, "127.0.0.1", a_id, ia, aux=True)
expect("an auxiliary connection is live, not a peer", 1, 1, 0, 3)
h = ServerConn(("127.0.0.1", p4))
expect("a connection that has not said hello", 1, 1, 1, 3)
a.msg({"type": "ping", "seq": 7})
pong = a.line(3.0)
R.check(isinstance(pong, dict) and pong.get("type") == "pong", f"a's ping answered ({pong})")
expect("a ping moves nothing", 1, 1, 1, 3)
b.s.sendall(b"this is not json\n")
err = b.line(3.0)
R.check(isinstance(err, dict) and err.get("type") == "error", f"b refused ({err})")
expect("a refused peer lingers: no peer", 1, 0, 1, 2)
x.close()
expect("the auxiliary connection closed", 1, 0, 1, 1)
h.close()
a.close()
b.close()
expect("all closed", 0, 0, 0, 0)
sys.exit(R.fails)
