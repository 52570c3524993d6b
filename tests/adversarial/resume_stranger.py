#!/usr/bin/env python3
"""A stranger asks the real server to resume someone else's session (docs/design/resume.md
4.8): registered under an id and key of its own, it sends connect{target, resume: ROOT} with
the root it saw (root ids are not secret: the server and the relay see them), COUNT times at
RATE per second, while the session's responder is suspended and registered.

usage: resume_stranger.py SERVER_PORT ME TARGET ROOT COUNT RATE COUNTER_PORT OUT
Its hello declares 127.0.0.1:COUNTER_PORT as an endpoint, where a listener counts who dials
it: the victim's punch would. Writes to OUT: "sent N", "punch N" (orders the server gave us:
it did introduce us), "error CODE N" per code, then, 3 s after the last connect, "dialled N"
(connections that reached COUNTER_PORT). Every wait is bounded."""
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from advpeer import Identity, ServerConn  # noqa: E402

port, me, target, root = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
count, rate, cport, outp = int(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7]), sys.argv[8]

dialled = [0]
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", cport))
ls.listen(64)
ls.settimeout(0.2)
stop = [False]


def counter():
    while not stop[0]:
        try:
            c, _ = ls.accept()
        except socket.timeout:
            continue
        dialled[0] += 1
        c.close()


t = threading.Thread(target=counter, daemon=True)
t.start()

srv = ServerConn(("127.0.0.1", port))
w = srv.register(me, Identity(me), endpoints=[f"127.0.0.1:{cport}"], features=["resume"])
if not w or w.get("type") != "welcome":
    sys.exit(f"registration failed: {w!r}")
punches, errors, sent = 0, {}, 0


def drain(until):
    global punches
    while time.time() < until:
        m = srv.next_msg(max(0.01, until - time.time()))
        if m is None:
            return
        if m.get("type") == "punch":
            punches += 1
        elif m.get("type") == "error":
            errors[m.get("code", "?")] = errors.get(m.get("code", "?"), 0) + 1


gap = 1.0 / rate
for i in range(count):
    srv.msg({"type": "connect", "target": target, "resume": root})
    sent += 1
    drain(time.time() + gap)
drain(time.time() + 3)
stop[0] = True
t.join(1)
with open(outp, "w") as f:
    f.write(f"sent {sent}\npunch {punches}\n")
    for k, v in sorted(errors.items()):
        f.write(f"error {k} {v}\n")
    f.write(f"dialled {dialled[0]}\n")
