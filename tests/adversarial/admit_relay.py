#!/usr/bin/env python3
"""A man in the middle between a real tcpunch peer and a private rendezvous server
(--secret-file): it relays the server's challenge to the peer, takes the admit of the peer's
answer and tries it on lines of its own (PROTOCOL.md, "Admission").
Usage: admit_relay.py LISTEN_PORT SERVER_PORT PROBE_PORT RESULT_FILE
Listens on 127.0.0.1:LISTEN_PORT for the peer (tcpunch -s 127.0.0.1:LISTEN_PORT ... listen).
Writes one line per attempt to RESULT_FILE: "WHAT ANSWER", ANSWER being the type (or error
code) of the server's reply. Every wait is bounded; exit 0 when all attempts got an answer."""
import base64
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import tpauth  # noqa: E402

LISTEN, SERVER, PROBE, RESULT = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]


class Conn(tpauth.LineConn):
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""


def answer(m):
    if not isinstance(m, dict):
        return "nothing"
    if m.get("type") == "error":
        return m.get("code", "error")
    return m.get("type", "?")


def steal(lst):
    """Relays a fresh server challenge to the next peer connection; returns the server
    connection, its nonce and the peer's first line (a dict)."""
    srv = Conn(SERVER)
    ch = srv.line()
    if not tpauth.is_challenge(ch):
        raise SystemExit(f"the server sent {ch!r}, not a challenge")
    lst.settimeout(15)
    peer_sock, _ = lst.accept()
    peer = tpauth.LineConn()
    peer.s = peer_sock
    peer.msg(ch)  # the real server's challenge, as if it were ours
    first = peer.line(timeout=10)
    peer_sock.close()  # the peer's hello never reaches the server
    if not isinstance(first, dict) or "admit" not in first:
        raise SystemExit(f"the peer answered {first!r}, no admit to take")
    return srv, ch["nonce"], first


def main():
    lst = socket.socket()
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(("127.0.0.1", LISTEN))
    lst.listen(4)
    out = []

    # 1. our own hello (another id, another key) with the peer's admit
    srv, nonce, hello = steal(lst)
    me = tpauth.Identity("mallory")
    mine = tpauth.hello_msg(me, nonce, "mallory", admit=hello["admit"])
    srv.msg(mine)
    out.append(f"own-hello {answer(srv.line())}")
    srv.s.close()

    # 2. the peer's own hello with our endpoints added: the victim of a reflection
    srv, nonce, hello = steal(lst)
    changed = dict(hello, endpoints=["192.0.2.99:22"] + hello.get("endpoints", []))
    srv.msg(changed)
    out.append(f"changed-endpoints {answer(srv.line())}")
    srv.s.close()

    # 3. the peer's hello unchanged: the relay itself works (the test's control)
    srv, nonce, hello = steal(lst)
    srv.msg(hello)
    out.append(f"unchanged {answer(srv.line())}")
    srv.s.close()

    # 4. the peer's admit on a probe line of our own (the probe listener of the same server
    # shares nothing with the main one but the secret; its nonce is relayed the same way)
    srv = Conn(PROBE)
    ch = srv.line()
    lst.settimeout(15)
    peer_sock, _ = lst.accept()
    peer = tpauth.LineConn()
    peer.s = peer_sock
    peer.msg(ch)
    first = peer.line(timeout=10)
    peer_sock.close()
    if isinstance(first, dict) and "admit" in first:
        srv.msg({"type": "probe", "version": 1, "admit": first["admit"]})
        out.append(f"probe {answer(srv.line())}")
    srv.s.close()
    with open(RESULT, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
