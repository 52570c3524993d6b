#!/usr/bin/env python3
"""Server quotas against raw clients on loopback (Phase 7): one client hogging the relay, idle
relay sessions, early bytes before `relayed`, and one key or one address squatting ids.
Sources other than 127.0.0.1 are other loopback addresses (127.0.0.2 ...), which Linux routes
to the same host: to the server they are other hosts.

Usage: quota.py MODE HOST PORT [ARG]
  hog      server with the default relay quotas (--relay-per-peer 4, --relay-per-ip 8)
  idle     server with --relay-idle 2
  early    server with the defaults (early bytes: 64 KiB)
  squat    server with the default id quotas (--ids-per-key 8, --new-ids-per-hour 20);
           ARG: a tag that makes this run's ids and keys unique
  lapse    server restarted on an id-db whose stamps the test edited; ARG: the same tag
  cluster  an instance of a cluster; ARG: the tag; prints nothing but the checks, the shell
           compares Redis before and after
Exit status = number of failures. Every wait is bounded."""
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import tpauth  # noqa: E402

MODE, HOST, PORT = sys.argv[1], sys.argv[2], int(sys.argv[3])
ARG = sys.argv[4] if len(sys.argv) > 4 else str(os.getpid())
R = tpauth.Report(f"quota {MODE}")
ok, bad, check = R.ok, R.bad, R.check
uid = tpauth.id_maker(ARG)
OPEN = []


class Conn(tpauth.LineConn):
    """A connection from source address src (a loopback address) that has read its challenge."""

    def __init__(self, src="127.0.0.1"):
        super().__init__(tpauth.dial((HOST, PORT), source=(src, 0)))
        OPEN.append(self)
        if self.read_challenge() is None:
            bad(f"first line {self.first!r}, want a challenge")

    def drain_until_end(self, timeout):
        """('eof'|'reset'|'timeout', seconds until then)."""
        start = time.time()
        end = start + timeout
        while time.time() < end:
            self.s.settimeout(max(0.01, end - time.time()))
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                return ("reset", time.time() - start)
            if not d:
                return ("eof", time.time() - start)
        return ("timeout", timeout)


def hello(ident_id, keyname=None, src="127.0.0.1"):
    """Registers ident_id with the key made from keyname (default: the id): (conn, answer)."""
    c = Conn(src)
    c.id = ident_id
    c.msg(tpauth.hello_msg(tpauth.Identity(keyname or ident_id), c.nonce, ident_id))
    return c, c.line()


def register(ident_id, keyname=None, src="127.0.0.1"):
    c, m = hello(ident_id, keyname, src)
    if not (m and m.get("type") == "welcome"):
        bad(f"{ident_id} registers from {src} (got {m})")
        return None
    return c


def once(ident_id, keyname=None, src="127.0.0.1"):
    """Registers and leaves again (so that the id is free to register next time)."""
    c, m = hello(ident_id, keyname, src)
    c.close()
    OPEN.remove(c)
    return m


def welcomed(m):
    return bool(m) and m.get("type") == "welcome"


def error_code(m):
    return m.get("code") if m and m.get("type") == "error" else None


def pair(a, b):
    """a connects to b: both punches, or (None, None)."""
    a.msg({"type": "connect", "target": b.id})
    pa, pb = a.line(), b.line()
    if not (pa and pb and pa.get("type") == "punch" and pb.get("type") == "punch"):
        bad(f"pairing {a.id} -> {b.id}: {pa} / {pb}")
        return None, None
    return pa, pb


def join(punch, src="127.0.0.1", early=b""):
    c = Conn(src)
    c.send((json.dumps({"type": "relay", "version": 1, "session": punch["session"],
                        "token": punch["token"]}) + "\n").encode() + early)
    return c


def relay_session(a, b, src="127.0.0.1"):
    """A relayed session between a and b, both sides joined from src: (ra, rb), or None with
    the reason (a punch without relay, a refused join) in the second member."""
    pa, pb = pair(a, b)
    if not pa:
        return None, "no punch"
    if not pa.get("relay"):
        return None, f"no relay offered ({pa.get('reason')})"
    ra = join(pa, src)
    rb = join(pb, src)
    ma, mb = ra.line(), rb.line()
    if ma and ma.get("type") == "relayed" and mb and mb.get("type") == "relayed":
        return (ra, rb), None
    return None, f"join refused: {ma} / {mb}"


# ---------------------------------------------------------------- hog

def t_hog():
    # offers made while under the limit may all be joined at once: the join counts again
    x1, x2 = register(uid("hogx"), "hog-key-x"), register(uid("hogx"), "hog-key-x")
    if not (x1 and x2):
        return
    punches = [pair(x1, x2) for _ in range(6)]
    check(all(p[0] and p[0].get("relay") for p in punches),
          "six offers to one key's two ids (none joined yet) all offer the relay")
    joined, refusal = [], None
    for pa, pb in punches:
        if not pa:
            continue
        ra, rb = join(pa), join(pb)
        ma, mb = ra.line(), rb.line()
        if ma and ma.get("type") == "relayed" and mb and mb.get("type") == "relayed":
            joined.append((ra, rb))
        elif refusal is None:
            refusal = ma if error_code(ma) else mb
    check(len(joined) == 4, f"one key's ids get 4 relayed sessions at once, not more "
          f"(--relay-per-peer 4): {len(joined)}")
    check(error_code(refusal) == "relay-full" and "relay-per-peer" in refusal.get("message", ""),
          f"the join beyond is refused with relay-full naming --relay-per-peer (got {refusal})")

    # with the key at its limit, new introductions still happen, without a relay offer
    pa, pb = pair(x1, x2)
    check(pa is not None and not pa.get("relay") and not pb.get("relay")
          and pa.get("direct", True) is True,
          f"a fifth introduction still happens, direct only, without a relay offer (got {pa})")
    check(pa is not None and "relay-per-peer" in (pa.get("reason") or "")
          and "relay-per-peer" in (pb.get("reason") or ""),
          f"both punches say why there is no relay (reason: {pa and pa.get('reason')})")

    # more keys from the same address: the address's own limit (--relay-per-ip 8)
    y1, y2 = register(uid("hogy"), "hog-key-y"), register(uid("hogy"), "hog-key-y")
    z1, z2 = register(uid("hogz"), "hog-key-z"), register(uid("hogz"), "hog-key-z")
    if not (y1 and y2 and z1 and z2):
        return
    more = []
    for _ in range(4):
        s, why = relay_session(y1, y2)
        if s:
            more.append(s)
    check(len(more) == 4, f"a second key from the same address gets its 4: {len(more)}")
    s, why = relay_session(z1, z2)
    check(s is None and "relay-per-ip" in (why or ""),
          f"a third key from the same address gets no ninth session (--relay-per-ip 8): {why}")

    # an honest pair from another address still gets the relay
    h1 = register(uid("honest"), src="127.0.0.2")
    h2 = register(uid("honest"), src="127.0.0.2")
    if h1 and h2:
        s, why = relay_session(h1, h2, src="127.0.0.2")
        check(s is not None, f"an honest pair from 127.0.0.2 is relayed meanwhile ({why})")
        if s:
            s[0].send(b"hello through the relay")
            got = s[1].s.recv(100)
            check(got == b"hello through the relay", "its bytes flow")

    # the attacker's sessions end: its quota is free again
    for ra, rb in joined:
        ra.close()
        rb.close()
    time.sleep(0.5)
    s, why = relay_session(x1, x2)
    check(s is not None, f"once its sessions end the key is relayed again ({why})")


# ---------------------------------------------------------------- idle

def t_idle():
    a, b = register(uid("idle")), register(uid("idle"))
    c, d = register(uid("busy")), register(uid("busy"))
    if not (a and b and c and d):
        return
    quiet, why = relay_session(a, b)
    busy, why2 = relay_session(c, d)
    if not check(quiet and busy, f"two sessions relayed ({why} / {why2})"):
        return
    # the busy one sends a byte every 0.5 s for 4 s; the quiet one sends nothing
    end = time.time() + 4.0
    quiet_end = None
    while time.time() < end:
        busy[0].send(b".")
        busy[1].s.settimeout(1.0)
        try:
            busy[1].s.recv(10)
        except (socket.timeout, ConnectionResetError):
            break
        if quiet_end is None:
            quiet[0].s.settimeout(0.01)
            try:
                if quiet[0].s.recv(10) == b"":
                    quiet_end = "eof"
            except socket.timeout:
                pass
            except ConnectionResetError:
                quiet_end = "reset"
        time.sleep(0.5)
    if quiet_end is None:
        quiet_end = quiet[0].drain_until_end(2.0)[0]
    check(quiet_end == "reset", f"a relayed session without a byte for --relay-idle 2 s is "
          f"cut with a reset (got {quiet_end})")
    busy[0].send(b"still")
    busy[1].s.settimeout(2.0)
    try:
        got = busy[1].s.recv(10)
    except (socket.timeout, ConnectionResetError):
        got = None
    check(got == b"still", f"a session that carries bytes lives on past it (got {got})")


# ---------------------------------------------------------------- early bytes

def t_early():
    a, b = register(uid("early")), register(uid("early"))
    if not (a and b):
        return
    # within the bound: kept and delivered after the splice
    pa, pb = pair(a, b)
    if pa and pa.get("relay"):
        blob = os.urandom(60 * 1024)
        ra = join(pa, early=blob)
        time.sleep(0.3)
        rb = join(pb)
        m = rb.line()
        got = b""
        if m and m.get("type") == "relayed":
            ra.line()
            got = rb.buf
            end = time.time() + 5
            while len(got) < len(blob) and time.time() < end:
                rb.s.settimeout(1)
                try:
                    d = rb.s.recv(65536)
                except socket.timeout:
                    continue
                if not d:
                    break
                got += d
        check(got == blob, f"60 KiB sent before the other side joined arrive intact "
              f"({len(got)} bytes)")
    # beyond it: refused at 64 KiB, not kept (the base kept up to ~256 KiB)
    pa, pb = pair(a, b)
    if not check(pa and pa.get("relay"), "a relay offer"):
        return
    ra = join(pa)
    time.sleep(0.2)
    sent = 0
    blob = b"x" * 8192
    ra.s.settimeout(0.2)
    for _ in range(12):  # 96 KiB, in steps
        try:
            ra.s.sendall(blob)
            sent += len(blob)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            break
        time.sleep(0.02)
    m = ra.line(5.0)
    check(error_code(m) == "relay-refused" and "65536" in m.get("message", ""),
          f"a joiner that sends {sent} bytes (> 64 KiB) before relayed is refused "
          f"(got {m})")
    rb = join(pb)
    m = rb.line()
    check(error_code(m) == "relay-refused",
          f"and its session is gone: the other side gets relay-refused (got {m})")


# ---------------------------------------------------------------- ids

def t_squat():
    tag = ARG
    # one key, many ids
    got = [welcomed(once(f"sq{i}-{tag}", f"squatter-{tag}")) for i in range(1, 9)]
    check(all(got), f"one key registers 8 ids ({sum(got)})")
    c, m = hello(f"sq9-{tag}", f"squatter-{tag}")
    check(error_code(m) == "too-many-ids", f"a ninth id of the same key is refused with "
          f"too-many-ids (got {m})")
    check(c.closed(), "and the connection is closed")
    # ... while its own ids still register
    time.sleep(0.3)  # the server has seen them leave
    check(welcomed(hello(f"sq1-{tag}", f"squatter-{tag}")[1]), "its own ids still register")
    # many new ids from one address, each with its own key
    got = [welcomed(once(f"rt{i}-{tag}", src="127.0.0.3")) for i in range(1, 21)]
    time.sleep(0.3)  # the server has seen them leave
    check(all(got), f"20 new ids from 127.0.0.3 within the hour ({sum(got)})")
    c, m = hello(f"rt21-{tag}", src="127.0.0.3")
    check(error_code(m) == "rate-limited" and "per hour" in m.get("message", ""),
          f"the 21st is refused with rate-limited, per hour (got {m})")
    check(welcomed(hello(f"rt1-{tag}", src="127.0.0.3")[1]),
          "an id 127.0.0.3 owns already still registers from there")
    check(welcomed(hello(f"rt21-{tag}", src="127.0.0.4")[1]),
          "another address still registers new ids")


def t_lapse():
    tag = ARG
    m = hello(f"sq1-{tag}", f"thief-{tag}")[1]
    check(welcomed(m), f"an id unused for longer than --id-expire lapses: another key takes it "
          f"(got {m})")
    m = hello(f"sq2-{tag}", f"thief-{tag}")[1]
    check(error_code(m) == "id-owned", f"an id used recently stays owned (got {m})")
    m = hello(f"sq2-{tag}", f"squatter-{tag}")[1]
    check(welcomed(m), f"by its owner (got {m})")


def t_cluster():
    """Instance with --max-ids 9: 8 ids of one key and one of another fill it."""
    tag = ARG
    got = [welcomed(hello(f"cq{i}-{tag}", f"cluster-squatter-{tag}")[1]) for i in range(1, 9)]
    got.append(welcomed(hello(f"cq9-{tag}", f"other-{tag}")[1]))
    check(all(got), f"9 ids register on the instance ({sum(got)})")
    print("READY", flush=True)
    sys.stdin.readline()  # the shell counts Redis's keys now
    m = hello(f"cq10-{tag}", f"cluster-squatter-{tag}")[1]
    check(error_code(m) == "too-many-ids", f"a ninth id of the same key is refused in Redis "
          f"with too-many-ids (got {m})")
    m = hello(f"cq11-{tag}", f"third-{tag}")[1]
    check(error_code(m) == "server-full", f"beyond --max-ids 9 a new id is refused with "
          f"server-full (got {m})")
    print("DONE", flush=True)
    sys.stdin.readline()


def main():
    try:
        {"hog": t_hog, "idle": t_idle, "early": t_early, "squat": t_squat, "lapse": t_lapse,
         "cluster": t_cluster}[MODE]()
    except (OSError, ValueError) as e:
        bad(f"unexpected {type(e).__name__}: {e}")
    for c in OPEN:
        c.close()
    print(f"quota {MODE}: {R.fails} failure(s)", flush=True)
    sys.exit(R.status())


main()
