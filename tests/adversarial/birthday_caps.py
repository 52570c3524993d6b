#!/usr/bin/env python3
"""hello.birthday at a real server (PROTOCOL.md, "Birthday punching"): the challenge offers the
feature or not, a hello whose birthday is out of range or malformed is refused with bad-field,
the admit covers the member (added or changed by someone on the path: not-admitted), and two
peers on loopback (mapping unknown) get the ordinary punch, without a plan.

Usage: birthday_caps.py PORT SEC_PORT SECRET_FILE OFF_PORT
PORT: a server with the default caps; SEC_PORT: the same with --secret-file SECRET_FILE (a
server with a secret answers any bad first line with not-admitted, so the ranges are tried at
PORT); OFF_PORT: one with --birthday-k-max 0. Prints "name value" lines. Every read is bounded
in time."""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import tpauth  # noqa: E402

PORT, SEC_PORT, OFF_PORT = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[4])
SECRET = open(sys.argv[3], "rb").read()


class Conn(tpauth.LineConn):
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)


def say(name, value):
    print(name, value, flush=True)


def features(port):
    c = Conn(port)
    ch = c.line()
    c.s.close()
    if not tpauth.is_challenge(ch):
        return "no-challenge"
    return ",".join(ch.get("features", [])) or "none"


def hello(name, birthday, admit_of=None, port=None):
    """Sends a signed hello for id name carrying birthday (None: no member; a str: the member
    as raw JSON text), with the admit of the message admit_of (default: the message itself).
    Returns (the reply's type or error code, the connection)."""
    c = Conn(port or PORT)
    ch = c.line()
    if not tpauth.is_challenge(ch):
        return "no-challenge", c
    ident = tpauth.Identity(name)
    m = tpauth.hello_msg(ident, ch["nonce"], name)
    if isinstance(birthday, dict):
        m["birthday"] = birthday
    base = dict(m)
    if admit_of is not None:
        base.pop("birthday", None)
        if isinstance(admit_of, dict):
            base["birthday"] = admit_of
    if port == SEC_PORT:
        m["admit"] = tpauth.admit(SECRET, ch["nonce"], base)
    if isinstance(birthday, str):  # raw text: spliced in before the closing brace
        import json
        text = json.dumps(m, separators=(",", ":"))[:-1] + ',"birthday":' + birthday + "}\n"
        c.send(text)
    else:
        c.msg(m)
    r = c.line()
    if r is None:
        return "eof", c
    if r.get("type") == "error":
        return r.get("code"), c
    return r.get("type"), c


def main():
    say("features-on", features(PORT))
    say("features-secret", features(SEC_PORT))
    say("features-off", features(OFF_PORT))
    # the caps out of range, one past each edge, and malformed members: bad-field
    bad = {
        "k-513": {"k": 513, "m": 1024},
        "k-neg": {"k": -1, "m": 1024},
        "m-4097": {"k": 256, "m": 4097},
        "m-neg": {"k": 256, "m": -1},
        "no-m": {"k": 256},
        "extra": {"k": 256, "m": 1024, "ttl": 2},
        "k-text": {"k": "256", "m": 1024},
    }
    for i, (what, bd) in enumerate(bad.items()):
        code, c = hello("bad%d" % i, bd)
        c.s.close()
        say("bad-" + what, code)
    for i, raw in enumerate(['"yes"', "[256,1024]", "null"]):
        code, c = hello("raw%d" % i, raw)
        c.s.close()
        say("bad-raw%d" % i, code)
    # the edges themselves register
    code, c = hello("edge0", {"k": 0, "m": 0})
    c.s.close()
    say("edge-0-0", code)
    code, c = hello("edge1", {"k": 512, "m": 4096})
    c.s.close()
    say("edge-512-4096", code)
    # with its own admit a hello with birthday gets in
    code, c = hello("admitted", {"k": 256, "m": 1024}, port=SEC_PORT)
    c.s.close()
    say("admit-own", code)
    # the admit covers birthday: added, changed or stripped on the path, it no longer matches
    code, c = hello("added", {"k": 256, "m": 1024}, admit_of="none",
                    port=SEC_PORT)
    c.s.close()
    say("admit-added", code)
    code, c = hello("changed", {"k": 512, "m": 1024}, admit_of={"k": 256, "m": 1024},
                    port=SEC_PORT)
    c.s.close()
    say("admit-changed", code)
    code, c = hello("stripped", None, admit_of={"k": 256, "m": 1024},
                    port=SEC_PORT)
    c.s.close()
    say("admit-stripped", code)
    # two peers on loopback announcing birthday: no probe, mapping unknown, so the ordinary
    # punch (the decision itself is tested in test_plan.c)
    code_a, a = hello("bdaya", {"k": 256, "m": 1024})
    code_b, b = hello("bdayb", {"k": 256, "m": 1024})
    say("pair-registered", "%s/%s" % (code_a, code_b))
    a.msg({"type": "connect", "target": "bdayb"})
    punch = None
    end = time.time() + 5
    while time.time() < end and punch is None:
        m = a.line(timeout=max(0.05, end - time.time()))
        if m is None:
            break
        if m.get("type") == "punch":
            punch = m
        elif m.get("type") == "ping":
            a.msg({"type": "pong", "seq": m["seq"]})
    if punch is None:
        say("pair-punch", "none")
    else:
        say("pair-punch", "birthday" if "birthday" in punch else "ordinary")
        say("pair-direct", "yes" if punch.get("direct", True) else "no")
    # a server that never plans birthday still takes the member (0 = no limit of ours)
    code, c = hello("offpeer", {"k": 256, "m": 1024}, port=OFF_PORT)
    c.s.close()
    say("off-accepts", code)
    code, c = hello("offbad", {"k": 600, "m": 1024}, port=OFF_PORT)
    c.s.close()
    say("off-bad", code)


main()
