#!/usr/bin/env python3
"""A third party at a responder's punch port (tests/adversarial/test_third_party_punch.sh).

Usage: thirdparty.py MODE SRC DST_PORT OUT
  MODE quiet: connect from SRC (an address, ephemeral port) to 127.0.0.1:DST_PORT, send
              nothing, read what comes for 1.5 s
  MODE forge: the same, and when a shake line arrives, answer it as an initiator would but
              with our own key, signed (a valid line with an untrusted key), then read on 1 s
Writes to OUT one JSON object: connected, bytes (received), shake (a shake line came),
forged (we sent ours), closed (the other side closed or reset). Every wait is bounded."""
import base64
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import tpauth  # noqa: E402

MODE, SRC, PORT, OUT = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
res = {"connected": False, "bytes": 0, "shake": False, "forged": False, "closed": False}


def forged_shake(offer):
    me = tpauth.Identity("third-party-%d" % os.getpid())
    eph = os.urandom(32)
    # section 8.2: the initiator signs session, "I", eph_R, eph_I, key_R, key_I, id_R, id_I
    t = (b"tcpunch-shake-v1\0" + offer["session"].encode() + b"I" +
         base64.b64decode(offer["eph"]) + eph + base64.b64decode(offer["key"]) + me.pk.raw +
         offer["from"].encode() + b"\0" + offer["to"].encode() + b"\0")
    return {"type": "shake", "version": 1, "session": offer["session"], "from": offer["to"],
            "to": offer["from"], "key": me.key, "eph": tpauth.b64(eph),
            "sig": tpauth.b64(me.sign(t))}


def main():
    s = None
    for _ in range(20):
        s = socket.socket()
        s.bind((SRC, 0))
        s.settimeout(1.0)
        try:
            s.connect(("127.0.0.1", PORT))
            break
        except OSError:
            s.close()
            s = None
            time.sleep(0.1)
    if s is None:
        return
    res["connected"] = True
    buf = b""
    end = time.time() + 1.5
    while time.time() < end:
        s.settimeout(max(0.01, end - time.time()))
        try:
            d = s.recv(65536)
        except socket.timeout:
            break
        except OSError:
            res["closed"] = True
            break
        if not d:
            res["closed"] = True
            break
        buf += d
        res["bytes"] = len(buf)
        if b"\n" in buf and not res["shake"]:
            try:
                offer = json.loads(buf.split(b"\n", 1)[0])
            except ValueError:
                offer = {}
            res["shake"] = offer.get("type") == "shake"
            if res["shake"] and MODE == "forge":
                s.sendall((json.dumps(forged_shake(offer), separators=(",", ":")) + "\n").encode())
                res["forged"] = True
                end = time.time() + 1.0
    s.close()


try:
    main()
finally:
    with open(OUT, "w") as f:
        json.dump(res, f)
