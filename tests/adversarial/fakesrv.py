#!/usr/bin/env python3
"""A fake rendezvous server for the adversarial tests: it speaks just enough of PROTOCOL.md
(challenge, welcome, punch, pong) to introduce real tcpunch peers, and lies where a test wants
it to. It verifies nothing (a hostile server need not).

Usage: fakesrv.py PORT LOG [options]
  --observed ID=EP      welcome ID (a main registration) with this observed endpoint instead
                        of the connection's source
  --punch ID=FILE       after welcoming ID, send it the punch of FILE (a JSON object merged
                        into {"type":"punch","session":..,"peer":"mallory","role":"responder",
                        "observed":..,"endpoints":[],"start_in_us":0}); repeatable, also for
                        one ID (its punches then follow each other --punch-gap S apart)
  --punch-aux yes       the --punch orders go to an auxiliary registration too (a resuming
                        initiator's); without it only to a main one
  --punch-delay S       the first scripted punch this long after the welcome (default 0.3)
  --punch-gap S         (default 0.05)
  --features LIST       challenge.features, comma-separated (e.g. birthday)
  --probe-port P        a probe listener on P: a welcome names it (probe_port, probe_token)
                        and a probe is answered with `observed` and the --mapping of its peer
  --mapping ID=MAP      what the probe says of ID's NAT (independent, dependent); needs
                        --probe-port
  --birthday K          on connect: a birthday plan in both punches, the initiator hard (K
                        sockets towards the target's observed endpoint), the target easy (one
                        guess at port 1 of the initiator's address)
  --initiator-delay S   on connect: the target's punch at once, the initiator's S seconds
                        later (default 0)
  --lifetime S          exit after S seconds (default 60)
Every event is a line in LOG ("hello ID", "punch ID ROLE", "report ID SESSION RESULT CAND",
...). Every wait is bounded."""
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from advpeer import FakePeer, FakeServer, ep_str  # noqa: E402

PORT, LOG = int(sys.argv[1]), sys.argv[2]
OBSERVED, PUNCHES, MAPPING, TOKENS = {}, {}, {}, {}
DELAY, LIFETIME = 0.0, 60.0
PUNCH_DELAY, PUNCH_GAP, FEATURES, PROBE_PORT, BIRTHDAY_K = 0.3, 0.05, None, 0, 0
PUNCH_AUX = False
args = sys.argv[3:]
while args:
    opt, val = args[0], args[1]
    args = args[2:]
    if opt == "--observed":
        k, v = val.split("=", 1)
        OBSERVED[k] = v
    elif opt == "--punch":
        k, v = val.split("=", 1)
        with open(v) as f:
            PUNCHES.setdefault(k, []).append(json.load(f))
    elif opt == "--punch-aux":
        PUNCH_AUX = val == "yes"
    elif opt == "--punch-delay":
        PUNCH_DELAY = float(val)
    elif opt == "--punch-gap":
        PUNCH_GAP = float(val)
    elif opt == "--features":
        FEATURES = val.split(",")
    elif opt == "--probe-port":
        PROBE_PORT = int(val)
    elif opt == "--birthday":
        BIRTHDAY_K = int(val)
    elif opt == "--mapping":
        k, v = val.split("=", 1)
        MAPPING[k] = v
    elif opt == "--initiator-delay":
        DELAY = float(val)
    elif opt == "--lifetime":
        LIFETIME = float(val)
    else:
        sys.exit("fakesrv.py: unknown option " + opt)

T_END = time.time() + LIFETIME
LOCK = threading.Lock()
PEERS = {}  # id -> Peer (main registrations)


def log(*words):
    with LOCK, open(LOG, "a") as f:
        f.write(" ".join(str(w) for w in words) + "\n")


class Peer(FakePeer):
    """A connection of ours: written by its own thread and by an introduction's (so one write
    at a time, and a write to a peer that left is no error), read until the lifetime ends."""

    def __init__(self, sock, addr, nonce):
        super().__init__(sock, addr, nonce)
        self.observed = ep_str(addr)
        self.wlock = threading.Lock()

    def send(self, data):
        with self.wlock:
            try:
                super().send(data)
            except OSError:
                pass

    def line(self, timeout=None):
        """The next line as a dict ({} when not JSON); None on EOF, an error or the end of
        the lifetime."""
        left = T_END - time.time()
        raw = self.rawline(left if timeout is None else min(timeout, left))
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return {}


class Server(FakeServer):
    Peer = Peer
    features = FEATURES


def punch_for(to, other, role, session):
    return {"type": "punch", "session": session, "peer": other.hello["id"], "role": role,
            "observed": other.observed, "endpoints": other.hello.get("endpoints", []),
            "start_in_us": 0, "key": other.hello["key"]}


def birthday(role, other):
    return {"role": role, "target": other.observed, "k": BIRTHDAY_K, "m": 1, "ttl": 0,
            "pace_ms": 100, "ports": [1, 1], "easy_delay_us": 0}


def introduce(init, target):
    session = os.urandom(16).hex()
    pt = punch_for(target, init, "responder", session)
    pi = punch_for(init, target, "initiator", session)
    if BIRTHDAY_K:
        pt["birthday"] = birthday("easy", init)
        pi["birthday"] = birthday("hard", target)
    target.msg(pt)
    log("punch", target.hello["id"], "responder", session)
    if DELAY > 0:
        time.sleep(DELAY)
    init.msg(pi)
    log("punch", init.hello["id"], "initiator", session)


def scripted_punch(p, extras):
    time.sleep(PUNCH_DELAY)
    for i, extra in enumerate(extras):
        m = {"type": "punch", "session": os.urandom(16).hex(), "peer": "mallory",
             "role": "responder", "observed": p.observed, "endpoints": [], "start_in_us": 0}
        m.update(extra)
        if i:
            time.sleep(PUNCH_GAP)
        p.msg(m)
        log("punch", p.hello["id"], m["role"], m["session"])


def serve_probe(p):
    """One probe connection: its line, then `observed` with the mapping its token's peer has."""
    m = p.line(timeout=5)
    if not m or m.get("type") != "probe":
        log("no-probe", ep_str(p.addr), m)
    else:
        pid = TOKENS.get(m.get("token", ""), "?")
        ans = {"type": "observed", "observed": ep_str(p.addr)}
        if pid in MAPPING:
            ans["mapping"] = MAPPING[pid]
        p.msg(ans)
        log("probe", pid, MAPPING.get(pid, "-"))
    p.close()


def probes():
    srv = Server(port=PROBE_PORT)
    n = 0
    while time.time() < T_END and n < 64:
        try:
            p = srv.accept(timeout=0.2, read_hello=False)
        except socket.timeout:
            continue
        n += 1
        threading.Thread(target=serve_probe, args=(p,), daemon=True).start()
    srv.close()


def serve(p):
    m = p.line()
    if not m or m.get("type") != "hello":
        log("no-hello", ep_str(p.addr), m)
        p.close()
        return
    p.hello = m
    pid = m.get("id", "?")
    aux = bool(m.get("aux"))
    if not aux and pid in OBSERVED:
        p.observed = OBSERVED[pid]
    bd = m.get("birthday")
    log("hello", pid, "aux" if aux else "main", ep_str(p.addr),
        "birthday=%s/%s" % (bd.get("k"), bd.get("m")) if isinstance(bd, dict) else "")
    extra = {}
    if PROBE_PORT:
        token = os.urandom(16).hex()
        with LOCK:
            TOKENS[token] = pid
        extra = {"probe_port": PROBE_PORT, "probe_token": token}
    p.welcome(id=pid, observed=p.observed, **extra)
    if not aux:
        with LOCK:
            PEERS[pid] = p
    if (not aux or PUNCH_AUX) and pid in PUNCHES:
        threading.Thread(target=scripted_punch, args=(p, PUNCHES[pid]), daemon=True).start()
    while True:
        m = p.line()
        if m is None:
            break
        t = m.get("type")
        if t == "ping":
            p.msg({"type": "pong", "seq": m.get("seq", 0)})
        elif t == "report":
            log("report", pid, m.get("session"), m.get("result"), m.get("candidate"))
        elif t == "connect":
            with LOCK:
                target = PEERS.get(m.get("target"))
            log("connect", pid, m.get("target"))
            if target is None:
                p.msg({"type": "error", "code": "peer-not-found", "message": "not here",
                        "fatal": False})
            else:
                threading.Thread(target=introduce, args=(p, target), daemon=True).start()
    log("closed", pid)
    p.close()


def main():
    if PROBE_PORT:
        threading.Thread(target=probes, daemon=True).start()
    srv = Server(port=PORT)
    n = 0
    while time.time() < T_END and n < 64:
        try:
            p = srv.accept(timeout=0.2, read_hello=False)  # the challenge is sent
        except socket.timeout:
            continue
        n += 1
        threading.Thread(target=serve, args=(p,), daemon=True).start()
    srv.close()


main()
