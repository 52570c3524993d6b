#!/usr/bin/env python3
"""A fake rendezvous for the peer's side of codes (tests/integration/test_code.sh): it takes one
peer connection on 127.0.0.1:PORT, answers its challenge and hello, and then plays a broken or
lying mailbox. It writes each message type the peer sent, one a line ("code-abort 5"), to
RECORD, and exits when the peer closes or after 60 s.

  codesrv.py MODE PORT RECORD
    nocode   the challenge does not offer "code"
    silent   "code", but no code-* message is ever answered
    badad    (to a claimer) code-claimed carries an AD that is not one (random bytes)
    reflect  (to a maker) the maker's own post comes back as the claimer's answer
    early    (to a claimer) code-confirm before anything was claimed
"""
import base64
import json
import os
import socket
import sys
import time

MODE, PORT, RECORD = sys.argv[1], int(sys.argv[2]), sys.argv[3]


def b64(data):
    return base64.b64encode(data).decode()


def main():
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", PORT))
    ls.listen(1)
    ls.settimeout(30)
    s, peer = ls.accept()
    s.settimeout(1.0)
    rec = open(RECORD, "w", buffering=1)
    feats = [] if MODE == "nocode" else ["code"]

    def send(obj):
        s.sendall((json.dumps(obj, separators=(",", ":")) + "\n").encode())

    send({"type": "challenge", "version": 1, "nonce": b64(os.urandom(32)), "features": feats})
    buf, end = b"", time.time() + 60
    while time.time() < end:
        try:
            d = s.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            break
        if not d:
            break
        buf += d
        while b"\n" in buf:
            raw, buf = buf.split(b"\n", 1)
            try:
                m = json.loads(raw)
            except ValueError:
                rec.write("not-json\n")
                continue
            t = m.get("type")
            rec.write(f"{t} {m.get('channel', '')}".strip() + "\n")
            if t == "hello":
                send({"type": "welcome", "version": 1, "id": m["id"],
                      "observed": f"{peer[0]}:{peer[1]}", "keepalive": 60})
                if MODE == "early":
                    send({"type": "code-confirm", "channel": 5, "tag": b64(os.urandom(64))})
            elif t == "ping":
                send({"type": "pong", "seq": m.get("seq", 0)})
            elif MODE == "silent":
                continue
            elif t == "code-claim" and MODE == "badad":
                send({"type": "code-claimed", "channel": m["channel"], "sid": b64(os.urandom(16)),
                      "share": b64(os.urandom(32)), "ad": b64(os.urandom(80))})
            elif t == "code-open" and MODE == "reflect":
                send({"type": "code-opened", "channel": 5, "sid": b64(os.urandom(16)),
                      "ttl": 600})
            elif t == "code-post" and MODE == "reflect":
                send({"type": "code-answer", "channel": 5, "share": m["share"], "ad": m["ad"],
                      "tag": b64(os.urandom(64))})
    rec.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
