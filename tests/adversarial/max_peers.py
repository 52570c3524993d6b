#!/usr/bin/env python3
"""--max-peers N against raw clients on loopback: N connections are accepted (each gets its
challenge), the one beyond gets exactly one line, the fatal `server-full` error sent instead of
the challenge, and then the end of the stream; the peers already registered keep working (a
ping, and one reaches the other with `connect`); once one connection closes, a new one is
accepted again, and the one after it is refused again.

Usage: max_peers.py PORT N   (the server runs with --max-peers N, N >= 3)
Prints ok/FAIL lines; exit status = number of failures. Every wait is bounded."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import tpauth  # noqa: E402

PORT, N = int(sys.argv[1]), int(sys.argv[2])
ADDR = ("127.0.0.1", PORT)
R = tpauth.Report("max_peers")
uid = tpauth.id_maker(os.getpid())


def everything(c, timeout=5.0):
    """All the bytes c receives until the server ends the stream: (bytes, how it ended:
    "eof", "reset" or "timeout")."""
    data, end = b"", time.time() + timeout
    while time.time() < end:
        c.s.settimeout(max(0.01, end - time.time()))
        try:
            d = c.s.recv(65536)
        except TimeoutError:
            return data, "timeout"
        except ConnectionResetError:
            return data, "reset"
        if not d:
            return data, "eof"
        data += d
    return data, "timeout"


def refused(what):
    """Opens one connection beyond the limit, sends nothing and checks what it receives: one
    line, the server-full error, then the end of the stream."""
    c = tpauth.LineConn(tpauth.dial(ADDR))
    data, how = everything(c)
    c.close()
    lines = data.split(b"\n")
    R.check(data.endswith(b"\n") and len(lines) == 2,
            f"{what}: exactly one line, no challenge after it ({data!r})")
    try:
        m = json.loads(lines[0])
    except ValueError:
        m = None
    R.check(isinstance(m, dict) and m.get("type") == "error" and m.get("code") == "server-full"
            and m.get("fatal", True) is True and str(N) in m.get("message", ""),
            f"{what}: the fatal server-full error naming the limit {N} ({m})")
    R.check(how == "eof", f"{what}: then the server ends the stream ({how})")


def accepted():
    """A new connection that got its challenge, or None (a refusal, or nothing in 5 s)."""
    c = tpauth.LineConn(tpauth.dial(ADDR))
    if c.read_challenge() is None:
        c.close()
        return None
    return c


def register(c, ident_id):
    c.id = ident_id
    c.msg(tpauth.hello_msg(tpauth.Identity(ident_id), c.nonce, ident_id))
    w = c.next_msg()
    return isinstance(w, dict) and w.get("type") == "welcome"


def main():
    held = [accepted() for _ in range(N)]
    R.check(all(held), f"{N} connections at once are accepted with a challenge each")
    if not all(held):
        return
    a, b = held[0], held[1]
    R.check(register(a, uid("mp-a")) and register(b, uid("mp-b")),
            "two of them register (registered peers count against the limit too)")
    refused(f"connection {N + 1}")
    refused(f"connection {N + 1} again (a refused one holds no slot)")

    a.msg({"type": "ping", "seq": 7})
    R.check(a.line() == {"type": "pong", "seq": 7}, "a registered peer still gets its pong")
    a.msg({"type": "connect", "target": b.id})
    pa, pb = a.next_msg(), b.next_msg()
    R.check(isinstance(pa, dict) and pa.get("type") == "punch" and pa.get("peer") == b.id and
            isinstance(pb, dict) and pb.get("type") == "punch" and pb.get("peer") == a.id,
            f"a registered peer still reaches another: both get the punch ({pa} / {pb})")

    held[-1].close()  # an unregistered one leaves: its slot is free once the server sees it
    again, end = None, time.time() + 5
    while again is None and time.time() < end:
        again = accepted()
        if again is None:
            time.sleep(0.1)
    R.check(again is not None, "after one connection closed a new one is accepted")
    refused(f"connection {N + 1} with the freed slot taken again")
    for c in held + [again]:
        if c is not None:
            c.close()


main()
print(f"max_peers: {R.fails} failure(s)", flush=True)
sys.exit(R.status())
