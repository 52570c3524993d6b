#!/usr/bin/env python3
"""A stranger that keeps a waiting peer's setup slots busy: registers ID, sends `connect TARGET`
RATE times a second for DUR seconds and never dials; it answers pings to stay registered.
Usage: starve.py PORT ID TARGET RATE DUR. Prints the punch orders it got."""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import tpauth  # noqa: E402

PORT, ID, TARGET = int(sys.argv[1]), sys.argv[2], sys.argv[3]
RATE, DUR = float(sys.argv[4]), min(float(sys.argv[5]), 60.0)


class Conn(tpauth.LineConn):
    def __init__(self):
        self.s = socket.create_connection(("127.0.0.1", PORT), timeout=5)


c = Conn()
ch = c.line()
c.msg(tpauth.hello_msg(tpauth.Identity(ID), ch["nonce"], ID, aux=False))
print("welcome", c.line().get("type"), flush=True)
end = time.time() + DUR
nxt = 0.0
npunch = 0
errs = {}
while time.time() < end:
    if time.time() >= nxt:
        c.msg({"type": "connect", "target": TARGET})
        nxt = time.time() + 1.0 / RATE
    m = c.line(timeout=0.05)
    if m is None:
        continue
    t = m.get("type")
    if t == "punch":
        npunch += 1
    elif t == "ping":
        c.msg({"type": "pong", "seq": m["seq"]})
    elif t == "error":
        errs[m.get("code")] = errs.get(m.get("code"), 0) + 1
print("punches", npunch, "errors", errs, flush=True)
