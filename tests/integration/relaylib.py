"""What the raw-socket relay tests share (relay_raw.py, relay_splice.py,
tests/adversarial/relay_splice_red.py): the server's own process under lib.sh's timeout(1), its
CPU time and descriptors, a registered control connection, a relayed pair of plain sockets, and
a bounded read. Every read is bounded in time."""
import json
import os
import socket
import time

import tpauth


def server_pid(pid):
    """lib.sh runs the server under timeout(1): the server is its child (pid itself when it has
    none, or /proc cannot say)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = f.read().split()
        return int(kids[0]) if kids else pid
    except OSError:
        return pid


def cpu_s(pid):
    """utime + stime of process pid, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        v = f.read().rsplit(")", 1)[1].split()
    return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")


def nfds(pid):
    """The descriptors process pid holds."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def register(addr, ident):
    """A control connection registered as ident (its welcome in .welcome, its id in .id)."""
    c = tpauth.LineConn(tpauth.dial(addr))
    c.read_challenge()
    c.msg(tpauth.hello_msg(tpauth.Identity(ident), c.nonce, ident))
    c.welcome = c.line()
    c.id = ident
    return c


def pair(addr, ida, idb, bad, rcvbuf=0, sndbuf=0):
    """A relayed session between two fresh registrations ida and idb: (a, b, controls), a (with
    SO_SNDBUF sndbuf) and b (SO_RCVBUF rcvbuf) plain sockets past `relayed`, with nothing read
    after it; None (after bad(why)) when the server offered no relay or did not join."""
    a, b = register(addr, ida), register(addr, idb)
    a.msg({"type": "connect", "target": b.id})
    pa, pb = a.line(), b.line()
    if not (pa and pb and pa.get("token") and pb.get("token")):
        bad(f"no relay offer: {pa} / {pb}")
        return None
    out = []
    for tok, kw in ((pa["token"], {"sndbuf": sndbuf}), (pb["token"], {"rcvbuf": rcvbuf})):
        c = tpauth.LineConn(tpauth.dial(addr, **kw))
        c.read_challenge()
        c.send((json.dumps({"type": "relay", "version": 1, "session": pa["session"],
                            "token": tok}) + "\n").encode())
        out.append(c)
    for c in out:
        m = c.line(10)
        if m != {"type": "relayed", "session": pa["session"]}:
            bad(f"no relayed line: {m}")
            return None
        if c.buf:
            bad(f"bytes after relayed before anyone sent any: {c.buf!r}")
            return None
        c.s.settimeout(20)
    return out[0].s, out[1].s, (a, b)


def recv_for(s, n, timeout=30.0):
    """Up to n bytes within timeout: (bytes, how) with how 'full', 'eof', 'reset' or
    'timeout'."""
    out, end = bytearray(), time.time() + timeout
    while len(out) < n and time.time() < end:
        s.settimeout(max(0.05, end - time.time()))
        try:
            d = s.recv(min(1 << 20, n - len(out)))
        except socket.timeout:
            return bytes(out), "timeout"
        except ConnectionResetError:
            return bytes(out), "reset"
        if not d:
            return bytes(out), "eof"
        out += d
    return bytes(out), "full"
