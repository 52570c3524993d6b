#!/usr/bin/env python3
"""A lying rendezvous with a wormhole mailbox (docs/design/wormhole.md section 6), for
test_wh_liar.sh: it welcomes real tcpunch peers (challenge, hello, welcome), runs the code-*
messages of 6.1 between a maker and a claimer, and lies where --lie says. It can compute
nothing that needs the code: it knows no words (the test never tells it), so whatever it forges
is what a server that sees every byte can forge.

Usage: whliar.py PORT LOG --lie MODE [--lifetime S] [--words-file FILE]
  MODE
  honest          no lie: the positive control (the exchange and the introduction succeed)
  swap            two concurrent exchanges crossed: a claimer of channel N1 gets the post of
                  the other open channel N2 (its sid, share, ad) and its answer goes to N2's
                  maker, whose confirm comes back to it; likewise the other way
  reflect         the maker's own post comes back to it at once as the answer (the same
                  share and ad, a random tag); a claimer's own tag comes back as the confirm
  reflect-relabel as reflect, but the reflected ad says "B" (the claimer's label) around the
                  maker's own id and key, so that only the share check can refuse it
  ad-a            the post a claimer gets names the server's identity (id "mallory", its key)
                  instead of the maker's: a valid AD of side A
  ad-b            the answer the maker gets names mallory (side B) instead of the claimer
  confirm-random  the maker's confirm replaced with 64 random bytes
  confirm-reflect the claimer's own tag Tb sent back to it as the maker's confirm
  mitm            the exchange runs honestly; then the claimer's connect is answered with an
                  introduction of two impostors: to the maker, "the claimer" (an impostor
                  dials the maker's punch port with the claimer's id and mallory's key), and
                  to the claimer, "the maker" (an impostor listens where the punch sends it,
                  with mallory's key); the punch orders name the real keys and the impostors'
                  shakes say "code": true, so that each side's check of the key in the
                  handshake is what must refuse the key its code did not authenticate
  split           a server that learned the code (--words-file: the words, read at the claim)
                  runs two PAKEs, one with each side, each with the other side's real AD, so
                  that both confirm the real other party; then it introduces them honestly.
                  The two runs have different keys: only the handshake's binding to the PAKE
                  key (wormhole.md 6.3) stops the session
  malformed       what each peer gets is broken the way its id says (the test's peers are
                  named for it): a maker "mo-VARIANT-..." gets a broken code-opened, a maker
                  "ma-VARIANT-..." a broken code-answer to its post, a claimer
                  "mc-VARIANT-..." a broken code-claimed (no maker needed: any channel is
                  "claimed"); VARIANT is one of MALFORMED's keys
  silent          opens and takes posts, and never answers a claim (the claimer's own
                  deadline must end it)
  silent-confirm  relays honestly but never passes the maker's confirm on
A code-abort from either side is told to the other as code-wrong (the liar is honest about
failures, so that each side's own checks are what the test sees). Every event is a line in LOG
("open N", "claim N ID", "lie ...", "abort N SIDE", "connect ID TARGET", "impostor ...
confirmed|refused"). Every wait is bounded."""
import base64
import json
import os
import random
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from advpeer import FakePeer, FakeServer, PeerConn, Shake, ep_str, ep_tuple  # noqa: E402
from whlib import (Cpace, Identity, b64, code_ci, code_prs, make_ad, parse_ad,  # noqa: E402
                   random_share, unb64)

PORT, LOG = int(sys.argv[1]), sys.argv[2]
LIE, LIFETIME, WORDS_FILE = "honest", 90.0, None
a = sys.argv[3:]
while a:
    if a[0] == "--lie":
        LIE = a[1]
    elif a[0] == "--lifetime":
        LIFETIME = float(a[1])
    elif a[0] == "--words-file":
        WORDS_FILE = a[1]
    else:
        sys.exit("whliar.py: unknown option " + a[0])
    a = a[2:]
T_END = time.time() + LIFETIME
LOCK = threading.Lock()
CHANNELS = {}  # channel -> dict(maker, sid, share, ad, claimer, peer_channel, confirm)
MAKERS = {}  # maker connection -> channel
CLAIMS = {}  # claimer connection -> channel of the maker its messages go to
PEERS = {}  # id -> main registration
MALLORY = Identity("mallory-the-server")


def log(*words):
    with LOCK, open(LOG, "a") as f:
        f.write(" ".join(str(w) for w in words) + "\n")


class Peer(FakePeer):
    def __init__(self, sock, addr, nonce):
        super().__init__(sock, addr, nonce)
        self.wlock = threading.Lock()
        self.pid = "?"

    def send(self, data):
        with self.wlock:
            try:
                super().send(data)
            except OSError:
                pass

    def next(self):
        left = T_END - time.time()
        raw = self.rawline(max(0.01, left))
        if raw is None:
            return None
        try:
            m = json.loads(raw)
        except ValueError:
            return {}
        return m if isinstance(m, dict) else {}


class Server(FakeServer):
    Peer = Peer
    features = ["code"]


def _top(share):
    return share[:31] + bytes([share[31] | 0x80])


def _b(n):
    return b64(os.urandom(n))


# VARIANT -> (member, value); value None: the member is left out. Shares that are 32 bytes
# but no element (all zero is the identity; 0xff.. does not decode; bit 255 set is a second
# encoding), and members of the wrong size or not base64, and a channel that is not ours.
MALFORMED = {
    "share31": ("share", lambda: _b(31)), "share33": ("share", lambda: _b(33)),
    "sharejunk": ("share", lambda: "!!not base64!!"), "shareid": ("share", lambda: b64(b"\0" * 32)),
    "shareff": ("share", lambda: b64(b"\xff" * 32)),
    "sharetop": ("share", lambda: b64(_top(random_share()))),
    "noshare": ("share", None), "ad0": ("ad", lambda: ""), "ad257": ("ad", lambda: _b(257)),
    "adjunk": ("ad", lambda: _b(40)), "sid15": ("sid", lambda: _b(15)), "sid17": ("sid", lambda: _b(17)),
    "tag63": ("tag", lambda: _b(63)), "tag65": ("tag", lambda: _b(65)),
    "chan0": ("channel", lambda: 0), "chanbig": ("channel", lambda: 1000000),
    "chanother": ("channel", lambda: "other"), "chanstr": ("channel", lambda: "7"),
    "ttl0": ("ttl", lambda: 0), "nottl": ("ttl", None), "extra": ("x", lambda: 1),
}


def malform(m, pid, prefix):
    """m broken as the peer's id asks (prefix-VARIANT-...), or None for another peer."""
    if LIE != "malformed" or not pid.startswith(prefix + "-"):
        return None
    variant = pid.split("-")[1]
    member, value = MALFORMED[variant]
    m = dict(m)
    if value is None:
        m.pop(member, None)
    elif member == "channel" and value() == "other":
        m["channel"] = (m.get("channel", 1) % 999) + 1
    else:
        m[member] = value()
    log("lie malformed", variant, "to", pid, m.get("type"))
    return m


def err(p, code, msg="the liar says so"):
    p.msg({"type": "error", "code": code, "message": msg, "fatal": False})


def relabel(ad, side, ident_id=None, key=None):
    """The same AD with another side (and id/key, when given)."""
    s, mode, i, k = parse_ad(ad)
    return make_ad(side, mode, ident_id or i, key or k)


def other_posted(n):
    """A posted channel other than n (for swap: the other of the two exchanges), waiting up
    to 10 s for it."""
    end = time.time() + 10
    while time.time() < end:
        with LOCK:
            for m, ch in CHANNELS.items():
                if m != n and ch.get("share"):
                    return m
        time.sleep(0.05)
    return None


def on_open(p, m):
    with LOCK:
        n = random.choice([x for x in range(1, 1000) if x not in CHANNELS])
        CHANNELS[n] = {"maker": p, "sid": os.urandom(16)}
        MAKERS[p] = n
    m = {"type": "code-opened", "channel": n, "sid": b64(CHANNELS[n]["sid"]), "ttl": 600}
    p.msg(malform(m, p.pid, "mo") or m)
    log("open", n, p.pid)


def on_post(p, m):
    n = m.get("channel")
    with LOCK:
        ch = CHANNELS.get(n)
    if ch is None or ch["maker"] is not p:
        err(p, "unexpected-type")
        return
    ch["share"], ch["ad"] = unb64(m["share"]), unb64(m["ad"])
    log("post", n, p.pid, parse_ad(ch["ad"])[:3] if parse_ad(ch["ad"]) else "unparsable-ad")
    bad = malform({"type": "code-answer", "channel": n, "share": b64(random_share()),
                   "ad": b64(make_ad("B", "file", "mallory", MALLORY.pk.raw)),
                   "tag": b64(os.urandom(64))}, p.pid, "ma")
    if bad:
        p.msg(bad)
        return
    if LIE in ("reflect", "reflect-relabel"):
        ad = ch["ad"] if LIE == "reflect" else relabel(ch["ad"], "B")
        time.sleep(0.2)
        p.msg({"type": "code-answer", "channel": n, "share": m["share"], "ad": b64(ad),
               "tag": b64(os.urandom(64))})
        log("lie reflect", n, "to the maker", LIE)


def on_claim(p, m):
    n = m.get("channel")
    bad = malform({"type": "code-claimed", "channel": n, "sid": b64(os.urandom(16)),
                   "share": b64(random_share()),
                   "ad": b64(make_ad("A", "file", "mallory", MALLORY.pk.raw))}, p.pid, "mc")
    if bad:
        with LOCK:
            CLAIMS[p] = None
        p.msg(bad)
        return
    if LIE == "silent":
        log("lie silent: claim of", n, "by", p.pid, "not answered")
        return
    with LOCK:
        ch = CHANNELS.get(n)
    if ch is None or not ch.get("share"):
        err(p, "code-unknown")
        log("claim-unknown", n, p.pid)
        return
    target = n
    if LIE == "swap":
        target = other_posted(n)
        if target is None:
            err(p, "code-unknown")
            log("swap: no other channel for", n)
            return
        log("lie swap: claim of", n, "by", p.pid, "gets the post of", target)
    with LOCK:
        tch = CHANNELS[target]
        tch["claimer"], tch["claimer_channel"] = p, n
        CLAIMS[p] = target
    ad = tch["ad"]
    if LIE == "split":
        with open(WORDS_FILE) as f:
            words = f.read().split()[0].split("-")
        tch["prs"] = code_prs(words)
        # towards the claimer the liar is the maker (A), with the maker's real AD
        tch["to_claimer"] = Cpace("A", tch["prs"], code_ci(n), tch["sid"], tch["ad"])
        p.msg({"type": "code-claimed", "channel": n, "sid": b64(tch["sid"]),
               "share": b64(tch["to_claimer"].share), "ad": b64(ad)})
        log("lie split: the claimer of", n, "gets the liar's own share")
        return
    if LIE == "ad-a":
        ad = relabel(ad, "A", "mallory", MALLORY.pk.raw)
        log("lie ad-a: the claimer of", n, "gets mallory's AD")
    p.msg({"type": "code-claimed", "channel": n, "sid": b64(tch["sid"]),
           "share": b64(tch["share"]), "ad": b64(ad)})
    log("claim", n, p.pid)


def on_answer(p, m):
    if LIE == "malformed":
        log("answer from", p.pid)
        return
    with LOCK:
        target = CLAIMS.get(p)
        ch = CHANNELS.get(target) if target is not None else None
    if ch is None:
        err(p, "unexpected-type")
        return
    ch["claimer_ad"] = unb64(m["ad"])
    ch["claimer_tag"] = m["tag"]
    if LIE in ("reflect", "reflect-relabel"):
        # the claimer's own tag back as the maker's confirm; the maker hears nothing
        p.msg({"type": "code-confirm", "channel": ch["claimer_channel"], "tag": m["tag"]})
        log("lie reflect: the claimer's own tag as its confirm")
        return
    if LIE == "split":
        ca = ch["to_claimer"]
        if ca.finish(unb64(m["share"]), ch["claimer_ad"]) is None or not ca.check(unb64(m["tag"])):
            log("split: the claimer's answer does not check (wrong words given to the liar?)")
            return
        # towards the maker the liar is the claimer (B), with the claimer's real AD
        cb = Cpace("B", ch["prs"], code_ci(target), ch["sid"], ch["claimer_ad"])
        ch["to_maker"] = cb
        if cb.finish(ch["share"], ch["ad"]) is None:
            log("split: the maker's share does not decode")
            return
        ch["maker"].msg({"type": "code-answer", "channel": target, "share": b64(cb.share),
                         "ad": b64(ch["claimer_ad"]), "tag": b64(cb.tag())})
        log("lie split: the maker of", target, "gets the liar's own answer")
        return
    out = dict(m)
    out["channel"] = target
    if LIE == "ad-b":
        out["ad"] = b64(relabel(unb64(m["ad"]), "B", "mallory", MALLORY.pk.raw))
        log("lie ad-b: the maker of", target, "gets mallory's AD")
    ch["maker"].msg(out)
    log("answer", target, p.pid)


def on_confirm(p, m):
    if LIE == "malformed":
        log("confirm from", p.pid)
        return
    with LOCK:
        n = MAKERS.get(p)
        ch = CHANNELS.get(n) if n is not None else None
    if ch is None or ch.get("claimer") is None:
        err(p, "unexpected-type")
        return
    tag = m["tag"]
    if LIE == "silent-confirm":
        log("lie silent-confirm: the confirm of", n, "kept back")
        return
    if LIE == "split":
        ok = ch["to_maker"].check(unb64(tag))
        tag = b64(ch["to_claimer"].tag())
        log("lie split: both sides confirmed" if ok else "split: the maker's confirm does not check")
    elif LIE == "confirm-random":
        tag = b64(os.urandom(64))
        log("lie confirm-random on", n)
    elif LIE == "confirm-reflect":
        tag = ch["claimer_tag"]
        log("lie confirm-reflect on", n)
    ch["confirmed"] = True
    ch["claimer"].msg({"type": "code-confirm", "channel": ch["claimer_channel"], "tag": tag})
    log("confirm", n, p.pid)


def on_abort(p, m):
    with LOCK:
        if p in MAKERS:
            ch, side = CHANNELS.get(MAKERS[p]), "maker"
            other = ch.get("claimer") if ch else None
        else:
            t = CLAIMS.get(p)
            ch, side = CHANNELS.get(t) if t is not None else None, "claimer"
            other = ch["maker"] if ch else None
    log("abort", m.get("channel"), side, p.pid)
    if other is not None:
        ch2 = ch.get("claimer_channel") if side == "maker" else MAKERS.get(other)
        other.msg({"type": "error", "code": "code-wrong", "channel": ch2,
                   "message": "the other side found the code wrong", "fatal": False})


def impostor_to_maker(maker, claimer_id, claimer_key, session):
    """Dials the maker's punch port as claimer_id with mallory's key, as the initiator. The
    punch order names the claimer's real key (the server saw it), so that the maker's check of
    the key in the handshake itself is what must refuse; the shake says "code": true."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    src = ls.getsockname()
    ls.close()
    maker.msg({"type": "punch", "session": session, "peer": claimer_id, "role": "responder",
               "observed": ep_str(src), "endpoints": [], "start_in_us": 0,
               "key": claimer_key})
    log("punch", maker.pid, "responder", "impostor", claimer_id)
    sh = Shake(MALLORY, claimer_id, {"peer": maker.pid, "session": session, "role": "initiator"})
    res = "refused"
    try:
        c = PeerConn(ep_tuple(ep_str(maker.addr)), source=src, wait=5.0)
        offer = c.line(5)
        if offer and offer.get("type") == "shake":
            c.send(sh.answer(offer, code=True))
            got = c.line(5)
            if got and got.get("type") == "confirm":
                res = "confirmed"
        else:
            res = "refused (no shake: %r)" % (offer,)
        c.close()
    except OSError as e:
        res = "refused (%s)" % e
    log("impostor as", claimer_id, "to the maker", maker.pid, res)


def impostor_to_claimer(claimer, maker_id, maker_key, session):
    """Listens where the claimer's punch points; answers its dial as the maker with mallory's
    key (the responder: the offer first, the confirm after the claimer's signed shake). The
    punch names the maker's real key; the offer says "code": true."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(4)
    ls.settimeout(8)
    claimer.msg({"type": "punch", "session": session, "peer": maker_id, "role": "initiator",
                 "observed": ep_str(ls.getsockname()), "endpoints": [], "start_in_us": 0,
                 "key": maker_key})
    log("punch", claimer.pid, "initiator", "impostor", maker_id)
    sh = Shake(MALLORY, maker_id, {"peer": claimer.pid, "session": session, "role": "responder"})
    res = "refused (never dialled)"
    try:
        s, _ = ls.accept()
        c = PeerConn.__new__(PeerConn)
        c.buf, c.s = b"", s
        c.send(sh.line(code=True))
        ans = c.line(5)
        if ans and ans.get("type") == "shake" and ans.get("sig"):
            c.send(sh.confirm(ans))
            time.sleep(1.0)
            res = "confirmed (the claimer signed a shake to mallory's key)"
        else:
            res = "refused (%s)" % ("closed" if ans is None else ans.get("type"))
        c.close()
    except OSError as e:
        res = "refused (%s)" % e
    ls.close()
    log("impostor as", maker_id, "to the claimer", claimer.pid, res)


def on_connect(p, m):
    target = m.get("target")
    log("connect", p.pid, target)
    with LOCK:
        t = PEERS.get(target)
    if t is None:
        err(p, "peer-not-found")
        return
    session = os.urandom(16).hex()
    if LIE == "mitm":
        threading.Thread(target=impostor_to_maker, args=(t, p.pid, p.hello["key"], session),
                         daemon=True).start()
        threading.Thread(target=impostor_to_claimer, args=(p, target, t.hello["key"], session),
                         daemon=True).start()
        return
    # honest: the usual introduction (fakesrv.py's)
    for to, other, role in ((t, p, "responder"), (p, t, "initiator")):
        to.msg({"type": "punch", "session": session, "peer": other.pid, "role": role,
                "observed": ep_str(other.addr), "endpoints": other.hello.get("endpoints", []),
                "start_in_us": 0, "key": other.hello["key"]})
        log("punch", to.pid, role, session)


HANDLERS = {"code-open": on_open, "code-post": on_post, "code-claim": on_claim,
            "code-answer": on_answer, "code-confirm": on_confirm, "code-abort": on_abort,
            "connect": on_connect}


def serve(p):
    m = p.next()
    if not m or m.get("type") != "hello":
        p.close()
        return
    p.hello = m
    p.pid = m.get("id", "?")
    aux = bool(m.get("aux"))
    log("hello", p.pid, "aux" if aux else "main")
    p.welcome(id=p.pid, observed=ep_str(p.addr))
    if not aux:
        with LOCK:
            PEERS[p.pid] = p
    while True:
        m = p.next()
        if m is None:
            break
        t = m.get("type")
        if t == "ping":
            p.msg({"type": "pong", "seq": m.get("seq", 0)})
        elif t in HANDLERS:
            try:
                HANDLERS[t](p, m)
            except (KeyError, ValueError, TypeError, base64.binascii.Error) as e:
                log("bad", t, p.pid, repr(e))
                err(p, "bad-field")
        elif t == "report":
            log("report", p.pid, m.get("result"))
    log("closed", p.pid)
    p.close()


def main():
    srv = Server(port=PORT)
    n = 0
    while time.time() < T_END and n < 96:
        try:
            p = srv.accept(timeout=0.2, read_hello=False)
        except socket.timeout:
            continue
        n += 1
        threading.Thread(target=serve, args=(p,), daemon=True).start()
    srv.close()


main()
