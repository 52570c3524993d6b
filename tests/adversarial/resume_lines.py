#!/usr/bin/env python3
"""The initiator's side of the resume lines (peer/rshake.h, docs/design/resume.md 4.4, 4.8) as an
attacker speaks them, on the connections a suspended responder dials (a lying server names our
listener as the session's peer). The attacker knows everything a relay or a server sees (root,
session, ids, epochs, both fresh keys) and, for the control run only, the resumption secret RS.

usage: resume_lines.py PORT PORT_VALID MODE RS_HEX ROOT INIT_ID RESP_ID OUT
  MODE replay   the first connection gets a line recorded from an earlier attempt of the same
                session: same S, root, epoch, ids, a valid MAC_I under RS, but over the
                responder's key of that attempt, not this one's
       forged   the first connection gets a line over this attempt's keys with a MAC the
                attacker made up (it has no RS): random bytes
       wrongkey the first connection gets a line MACed with another key than RS
       valid    (control) no attack
  The connection to PORT gets the attack (MODE); then the one to PORT_VALID (the order's
  second candidate) gets the valid answer (MAC_I under RS over this connection's keys), and
  its `resumed` is checked against MAC_R.
Writes to OUT one line per connection: "conn N MODE offer-epoch E S RESULT" with RESULT
"closed" (dropped without a line), "resumed-ok" (a resumed whose MAC verified), or what came.
Each accept waits at most 10 s; every read is bounded."""
import base64
import hashlib
import json
import os
import socket
import sys
import time

PORT, PORT_VALID, MODE, RS = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], bytes.fromhex(sys.argv[4])
ROOT, ID_I, ID_R, OUT = sys.argv[5:9]
PREFIX = b"tcpunch-rmac-v1"


def be(v, n=8):
    return v.to_bytes(n, "big")


def mac(key, letter, s, e, e_r, e_i, rx_i, rx_r=None, gone=False):
    m = (PREFIX + letter + s.encode() + ROOT.encode() + be(e) + ID_I.encode() + b"\0" +
         ID_R.encode() + b"\0" + e_r + e_i + be(rx_i))
    if rx_r is not None:
        m += be(rx_r) + (b"\1" if gone else b"\0")
    return hashlib.blake2b(m, digest_size=32, key=key).digest()


def b64(b):
    return base64.b64encode(b).decode()


def answer(s, e, e_r, e_i, key, rx=0, raw_mac=None):
    m = raw_mac if raw_mac is not None else mac(key, b"I", s, e, e_r, e_i, rx)
    return (json.dumps({"type": "resume", "session": s, "root": ROOT, "from": ID_I, "to": ID_R,
                        "epoch": e, "eph": b64(e_i), "rx": rx, "mac": b64(m)},
                       separators=(",", ":")) + "\n").encode()


def read_line(c, timeout):
    buf, end = b"", time.time() + timeout
    while b"\n" not in buf:
        left = end - time.time()
        if left <= 0:
            return buf, "timeout"
        c.settimeout(left)
        try:
            d = c.recv(4096)
        except socket.timeout:
            return buf, "timeout"
        except OSError:
            return buf, "closed"
        if not d:
            return buf, "closed"
        buf += d
    return buf.split(b"\n", 1)[0], "line"


def listener(port):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(8)
    return ls


def one(ls, n, attack, out):
    """One connection the responder dialled on ls; returns its result."""
    ls.settimeout(10)
    try:
        c, _ = ls.accept()
    except socket.timeout:
        out.write(f"conn {n} {attack} none\n")
        return "none"
    line, how = read_line(c, 5)
    if how != "line":
        out.write(f"conn {n} {attack} no-offer {how}\n")
        c.close()
        return how
    offer = json.loads(line)
    s, e, e_r = offer["session"], offer["epoch"], base64.b64decode(offer["eph"])
    e_i = os.urandom(32)  # a curve25519 public key in all but a negligible share of cases
    if attack == "replay":
        old_e_r = os.urandom(32)  # the responder's key in the attempt the line was recorded in
        c.sendall(answer(s, e, old_e_r, os.urandom(32), RS))
    elif attack == "forged":
        c.sendall(answer(s, e, e_r, e_i, RS, raw_mac=os.urandom(32)))
    elif attack == "wrongkey":
        c.sendall(answer(s, e, e_r, e_i, os.urandom(32)))
    else:
        c.sendall(answer(s, e, e_r, e_i, RS))
    line, how = read_line(c, 3)
    result = how
    if how == "line":
        try:
            r = json.loads(line)
            want = mac(RS, b"R", s, e, e_r, e_i, 0, r["rx"], r["gone"])
            ok = r.get("type") == "resumed" and base64.b64decode(r["mac"]) == want
            result = "resumed-ok" if ok else "answered:" + line[:80].decode(errors="replace")
        except (ValueError, KeyError, TypeError):
            result = "answered:" + line[:80].decode(errors="replace")
    out.write(f"conn {n} {attack} offer-epoch {e} {s} {result}\n")
    c.close()
    return result


# the responder dials both candidates at once: the attack's first, then (its result known)
# the valid one, whose connection waits in the backlog with the responder's offer in it
la, lv = listener(PORT), listener(PORT_VALID)
out = open(OUT, "w", buffering=1)
one(la, 1, MODE, out)
one(lv, 2, "valid", out)
