#!/usr/bin/env python3
"""Someone who can PUBLISH on the cluster's Redis (a leaked Redis password), for
test_cluster_bus.sh. Speaks RESP over a loopback socket; every wait is bounded.

  busforge.py answer PORT PREFIX VICTIM_INST GHOST [SECRETFILE]
      subscribes to GHOST's channel (a directory entry the caller points at GHOST), prints
      READY, waits for an introduce and publishes a forged answer to VICTIM_INST's channel
      whose line carries two lines (an embedded newline), each an error saying INJECTED.
      With SECRETFILE the answer is correctly signed as GHOST (an insider's forgery: only
      the strict checks stand in the way).
  busforge.py introduce PORT PREFIX TARGET_INST TARGET ATTACKER_EP [SECRETFILE]
      publishes a forged introduce from a made-up instance: "mallory" wants TARGET, with
      ATTACKER_EP as its only candidate (a punched peer would dial it).
  busforge.py hold PORT - ID
      (PORT: an instance) registers ID with a ping in the same segment as the hello: the
      ping must not be answered before the claim's verdict (the welcome). Prints the order.
  busforge.py replay PORT PREFIX INST [OTHER_INST]
      subscribes to INST's channel, prints READY, republishes the first introduce it sees
      there as it was (and on OTHER_INST's channel too), prints its session and the number
      of receivers.
"""
import hashlib
import hmac
import json
import os
import socket
import sys
import time

TIMEOUT = 20


class Resp:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.buf = b""

    def cmd(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.s.sendall(out)

    def _line(self):
        while b"\r\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise EOFError("redis closed")
            self.buf += d
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            d = self.s.recv(65536)
            if not d:
                raise EOFError("redis closed")
            self.buf += d
        out, self.buf = self.buf[:n], self.buf[n + 2:]
        return out

    def reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t in (b"+", b"-"):
            return rest.decode()
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t == b"*":
            return [self.reply() for _ in range(int(rest))]
        raise ValueError("bad reply %r" % line)


def chan(prefix, inst):
    return prefix + "inst:" + inst


def bus_key(path):
    h = hashlib.sha256(open(path, "rb").read()).digest()
    return hashlib.blake2b(h, digest_size=32, key=b"tcpunch cluster bus key v1").digest()


def seal(msg, channel, sender, secret):
    """The wire form: signed (v1.MAC.JSON) with a secret, else the plain JSON of old servers."""
    if not secret:
        return json.dumps(msg, separators=(",", ":")).encode()
    msg = dict(msg, sender=sender, t=int(time.time() * 1e6))
    body = json.dumps(msg, separators=(",", ":")).encode()
    mac = hmac.new(bus_key(secret), b"tcpunch-cluster-bus-v1\0" + channel.encode() + b"\0" + body,
                   hashlib.sha512).digest()[:32]
    return b"v1." + mac.hex().encode() + b"." + body


def body_of(payload):
    if payload.startswith(b"v1."):
        payload = payload.split(b".", 2)[2]
    return json.loads(payload)


def wait_introduce(r, deadline):
    while time.time() < deadline:
        m = r.reply()
        if isinstance(m, list) and m and m[0] == b"message":
            try:
                body = body_of(m[2])
            except ValueError:
                continue
            if body.get("type") == "introduce":
                return m[2], body
    raise TimeoutError("no introduce")


def subscribe(port, channel):
    r = Resp(port)
    r.cmd("SUBSCRIBE", channel)
    r.reply()
    print("READY", flush=True)
    return r


def publish(port, channel, payload):
    p = Resp(port)
    p.cmd("PUBLISH", channel, payload)
    return p.reply()


def main():
    mode, port, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    deadline = time.time() + TIMEOUT
    if mode == "answer":
        victim, ghost = sys.argv[4], sys.argv[5]
        secret = sys.argv[6] if len(sys.argv) > 6 else None
        r = subscribe(port, chan(prefix, ghost))
        _, intro = wait_introduce(r, deadline)
        e1 = json.dumps({"type": "error", "code": "internal", "message": "INJECTED-1",
                         "fatal": False}, separators=(",", ":"))
        e2 = json.dumps({"type": "error", "code": "internal", "message": "INJECTED-2",
                         "fatal": True}, separators=(",", ":"))
        ans = {"type": "answer", "session": intro["session"], "line": e1 + "\n" + e2,
               "delay_us": 0}
        n = publish(port, chan(prefix, victim), seal(ans, chan(prefix, victim), ghost, secret))
        # and an error answer with a code no instance sends, as a second try
        bad = {"type": "answer", "session": intro["session"], "code": "INJECTED-CODE",
               "message": "INJECTED-3"}
        publish(port, chan(prefix, victim), seal(bad, chan(prefix, victim), ghost, secret))
        print("FORGED", intro["session"], n, flush=True)
    elif mode == "introduce":
        inst, target, ep = sys.argv[4], sys.argv[5], sys.argv[6]
        secret = sys.argv[7] if len(sys.argv) > 7 else None
        session = os.urandom(16).hex()
        punch = {"type": "punch", "session": session, "peer": "mallory", "role": "responder",
                 "observed": ep, "endpoints": [ep]}
        intro = {"type": "introduce", "session": session, "from": "nowhere", "target": target,
                 "peer": json.dumps(punch, separators=(",", ":")), "path": "any",
                 "rtt_us": 1000, "bus_rtt_us": 1000}
        n = publish(port, chan(prefix, inst), seal(intro, chan(prefix, inst), "nowhere", secret))
        print("FORGED", session, n, flush=True)
    elif mode == "hold":
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                        "integration"))
        import tpauth
        ident_id = sys.argv[4]

        class Conn(tpauth.LineConn):
            def __init__(self):
                self.s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        c = Conn()
        ch = c.line()
        if not tpauth.is_challenge(ch):
            sys.exit("no challenge: %r" % (ch,))
        hello = tpauth.hello_msg(tpauth.Identity(ident_id), ch["nonce"], ident_id)
        c.send(json.dumps(hello, separators=(",", ":")) + "\n" +
               json.dumps({"type": "ping", "seq": 7}, separators=(",", ":")) + "\n")
        order = []
        while len(order) < 2:
            m = c.line()
            if m is None:
                break
            order.append(m.get("type", "?"))
        print(" ".join(order), flush=True)
        sys.exit(0 if order == ["welcome", "pong"] else 1)
    elif mode == "replay":
        inst = sys.argv[4]
        r = subscribe(port, chan(prefix, inst))
        raw, intro = wait_introduce(r, deadline)
        n = publish(port, chan(prefix, inst), raw)
        if len(sys.argv) > 5:
            publish(port, chan(prefix, sys.argv[5]), raw)
        print("REPLAYED", intro["session"], n, flush=True)
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
