#!/usr/bin/env python3
"""A stranger who knows an id: registers on a real server (a signed hello, tpauth.py), sends
`connect TARGET` on its control connection and then never dials: the punch order it gets is
ignored, the connection just stays open.

Usage: stranger.py SERVER_PORT ID TARGET HOLD_SECONDS OUT
Writes OUT ("punched" once the server sent us the punch order, "registered" before that, or
the server's error) and holds the connection HOLD_SECONDS, answering pings. Bounded."""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import tpauth  # noqa: E402

PORT, ID, TARGET, HOLD, OUT = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]


class Conn(tpauth.LineConn):
    def __init__(self):
        self.s = socket.create_connection(("127.0.0.1", PORT), timeout=5)


def note(what):
    with open(OUT, "w") as f:
        f.write(what + "\n")


def main():
    c = Conn()
    ch = c.line()
    if not tpauth.is_challenge(ch):
        note("no challenge: %r" % (ch,))
        return
    c.msg(tpauth.hello_msg(tpauth.Identity(ID), ch["nonce"], ID, aux=True))
    w = c.line()
    if not w or w.get("type") != "welcome":
        note("refused: %r" % (w,))
        return
    note("registered")
    c.msg({"type": "connect", "target": TARGET})
    end = time.time() + HOLD
    while time.time() < end:
        m = c.line(timeout=max(0.05, end - time.time()))
        if m is None:
            time.sleep(0.05)  # a timeout, or the server closed: hold on all the same
            continue
        if m.get("type") == "punch":
            note("punched")
        elif m.get("type") == "ping":
            c.msg({"type": "pong", "seq": m["seq"]})
        elif m.get("type") == "error":
            note("error: %s" % m.get("code"))


main()
