#!/usr/bin/env python3
"""A third party at the mailbox (docs/design/wormhole.md section 6), for test_wh_eavesdrop.sh
and test_wh_flood.sh. It speaks the code-* messages with its own identity (whlib.py).

  whguess.py opened DIR
      the channels of every code-opened line a recorder (recorder.py) saw in DIR, one a line,
      in the order of the connections
  whguess.py answer DIR
      the first code-answer a claimer sent in DIR, as one JSON line (share, ad, tag)
  whguess.py claim PORT ID CHANNEL HOW OUT [--source ADDR]
      claims CHANNEL first (an auxiliary registration ID) and answers as CPace's responder:
        right:W1-W2     with those words (the positive control: the maker must confirm)
        wrong:W1-W2     with those words, which are not the code's (a guess that missed)
        replay:FILE     the share, ad and tag of a recorded answer (FILE from `answer`)
        stall           no answer at all: waits (45 s at most) for what the mailbox says
        vanish          closes the connection right after the claim
        right-wait:W1-W2  as right, but after the confirm it writes OUT.confirmed and waits
                        (20 s at most) for a file OUT.go before its code-abort
  whguess.py intrude PORT ID TARGET OUT
      a stranger (its own id and key) asks for TARGET (a maker whose exchange is confirmed,
      waiting for its claimer's order) and, when the server introduces it, dials TARGET's
      punch port and plays the initiator's handshake. OUT: what came back (the connect's
      answer; offer: whether TARGET sent its shake; result: confirmed or refused)
      OUT gets one JSON object: what came back (result: confirmed, wrong, error CODE,
      nothing, bad-confirm), and after a confirm the ISK, MAC key and binding key (hex) the
      run derived. right: after the confirm a code-abort, so that the maker ends at once.
  whguess.py leaks PATH[,PATH...] CODE... [--secrets OUT]
      whether the bytes in PATH (files, or every file of a directory) contain a word of a
      CODE (as words or as its PRS, also inside base64 members) or a secret of a claim's OUT
      (the ISK, MAC key, binding key: raw, hex, base64); exit 1 and each hit printed when so
  whguess.py flood PORT KIND SOURCE N SECONDS OUT [--lifetime S]
      KIND open: N main registrations from SOURCE (127.0.0.x), each one code-open; KIND
      claim: one auxiliary registration claiming N random channels. At most N messages
      within SECONDS; OUT gets the counts of each answer ({"opened": 4, "rate-limited": 30,
      ...}) and the position of the first rate-limited. The connections stay open (holding
      their channels) for --lifetime seconds from the start (default SECONDS), then close.
Every wait is bounded."""
import glob
import json
import os
import random
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "adversarial"))
from whlib import (Cpace, Identity, WhConn, code_ci, code_prs, cpace_bind,  # noqa: E402
                   is_error, leak_hits, make_ad, parse_ad, unb64)


def _conn_files(d, ext):
    def n(p):
        m = re.search(r"conn-(\d+)\.", p)
        return int(m.group(1)) if m else 0
    return sorted(glob.glob(os.path.join(d, "conn-*." + ext)), key=n)


def _lines(path):
    with open(path, "rb") as f:
        for raw in f.read().split(b"\n"):
            try:
                m = json.loads(raw)
            except ValueError:
                continue
            if isinstance(m, dict):
                yield m


def cmd_opened(d):
    for p in _conn_files(d, "down"):
        for m in _lines(p):
            if m.get("type") == "code-opened":
                print(m.get("channel"))
    return 0


def cmd_answer(d):
    for p in _conn_files(d, "up"):
        for m in _lines(p):
            if m.get("type") == "code-answer":
                print(json.dumps({k: m[k] for k in ("share", "ad", "tag")}))
                return 0
    print("no code-answer in " + d, file=sys.stderr)
    return 1


def cmd_leaks(paths, codes, secrets_file):
    """leak_hits over every file of paths (directories: their files), for each code; secrets
    from a claim's OUT (isk, mac_key, bind). Prints each hit; 1 when any."""
    data = b""
    for p in paths:
        for f in sorted(glob.glob(os.path.join(p, "*"))) if os.path.isdir(p) else [p]:
            with open(f, "rb") as fh:
                data += fh.read() + b"\n"
    secrets = []
    if secrets_file:
        with open(secrets_file) as f:
            r = json.loads(f.read())
        secrets = [bytes.fromhex(r[k]) for k in ("isk", "mac_key", "bind") if r.get(k)]
    hits = []
    for code in codes:
        words = code.split("-")[1:]
        hits += [f"{code}: {h}" for h in leak_hits(data, words, secrets)]
    for h in hits:
        print(h)
    print(f"{len(data)} bytes searched for {len(codes)} codes and {len(secrets)} secrets: "
          f"{len(hits)} hits")
    return 1 if hits else 0


def cmd_claim(port, ident_id, channel, how, out, source):
    res = {"channel": channel, "how": how.split(":")[0]}
    ident = Identity(ident_id)
    w = WhConn(("127.0.0.1", port), source=(source, 0) if source else None)
    welcome = w.register(ident_id, ident, aux=True)
    if not welcome or welcome.get("type") != "welcome":
        res["result"] = "not-registered"
        res["got"] = welcome
        return finish(out, res)
    res["features"] = w.features()
    claimed = w.claim(channel)
    if not claimed or claimed.get("type") != "code-claimed":
        res["result"] = "error " + (claimed or {}).get("code", "nothing") if is_error(claimed) else "nothing"
        res["got"] = claimed
        return finish(out, res)
    sid, ya, ada = unb64(claimed["sid"]), unb64(claimed["share"]), unb64(claimed["ad"])
    parsed = parse_ad(ada)
    res["maker_ad"] = list(parsed[:3]) if parsed else None
    kind, _, arg = how.partition(":")
    if kind == "vanish":
        # gone right after the claim: the mailbox burns the channel (the maker hears code-wrong)
        w.close()
        res["result"] = "vanished"
        return finish(out, res)
    if kind == "stall":
        # no answer: the mailbox's step deadline (30 s from the claim) must end the exchange
        got = w.next_msg(45)
        res["got"] = got
        res["result"] = ("error " + got.get("code", "?")) if is_error(got) else "nothing"
        w.close()
        return finish(out, res)
    if kind == "replay":
        with open(arg) as f:
            rec = json.loads(f.read())
        got = w.answer(channel, unb64(rec["share"]), unb64(rec["ad"]), unb64(rec["tag"]), timeout=10)
        c = None
    else:
        mode = parsed[1] if parsed else "file"
        c = Cpace("B", code_prs(arg.split("-")), code_ci(channel), sid,
                  make_ad("B", mode, ident_id, ident.pk.raw))
        if c.finish(ya, ada) is None:
            res["result"] = "maker share refused"
            return finish(out, res)
        got = w.answer(channel, c.share, c.ad, c.tag(), timeout=10)
    res["got"] = got
    if got and got.get("type") == "code-confirm":
        if c is not None and c.check(unb64(got["tag"])):
            res["result"] = "confirmed"
            res["isk"] = c.isk.hex()
            res["mac_key"] = c.mac_key.hex()
            res["bind"] = cpace_bind(c.isk).hex()
        else:
            res["result"] = "bad-confirm"
        if kind == "right-wait":
            # the maker now waits for our punch order: let a stranger try first (bounded)
            with open(out + ".confirmed", "w") as f:
                f.write(json.dumps(res) + "\n")
            end = time.time() + 20
            while time.time() < end and not os.path.exists(out + ".go"):
                w.next_msg(0.1)
        w.abort(channel)
        # the abort's answer, if any (the maker hears code-wrong)
        res["after_abort"] = w.next_msg(1.0)
    elif is_error(got):
        res["result"] = "wrong" if got.get("code") == "code-wrong" else "error " + got.get("code", "?")
    else:
        res["result"] = "nothing"
    w.close()
    return finish(out, res)


def cmd_intrude(port, ident_id, target, out):
    from advpeer import PeerConn, Shake, ep_tuple
    res = {"target": target}
    ident = Identity(ident_id)
    w = WhConn(("127.0.0.1", port))
    w.register(ident_id, ident)
    punch = w.ask({"type": "connect", "target": target}, timeout=5)
    res["connect"] = (punch or {}).get("type"), (punch or {}).get("code")
    res["result"] = "no introduction"
    if punch and punch.get("type") == "punch":
        sh = Shake(ident, ident_id, punch)
        try:
            c = PeerConn(ep_tuple(punch["observed"]), wait=3.0)
            offer = c.line(5)
            res["offer"] = bool(offer and offer.get("type") == "shake")
            res["result"] = "refused"
            if res["offer"]:
                c.send(sh.answer(offer))
                got = c.line(5)
                if got and got.get("type") == "confirm":
                    res["result"] = "confirmed"
            c.close()
        except OSError as e:
            res["result"] = f"refused ({e})"
    w.close()
    return finish(out, res)


def finish(out, res):
    with open(out, "w") as f:
        f.write(json.dumps(res, default=str) + "\n")
    print(json.dumps(res, default=str))
    return 0


def cmd_flood(port, kind, source, n, seconds, out, lifetime):
    t0 = time.time()
    end = t0 + seconds
    counts, first_limited, conns, cut = {}, None, [], 0
    tag = f"{os.getpid()}-{random.randrange(1 << 30)}"

    def count(m, i):
        nonlocal first_limited
        if m is None:
            k = "nothing"
        elif m.get("type") == "error":
            k = m.get("code", "?")
        else:
            k = m.get("type", "?").replace("code-", "")
        counts[k] = counts.get(k, 0) + 1
        if k == "rate-limited" and first_limited is None:
            first_limited = i

    if kind == "open":
        for i in range(1, n + 1):
            if time.time() >= end:
                break
            try:
                w = WhConn(("127.0.0.1", port), timeout=2, source=(source, 0))
                ident_id = f"flood-{tag}-{i}"
                wl = w.register(ident_id, Identity(ident_id), timeout=2)
                if not wl or wl.get("type") != "welcome":
                    count(wl, i)
                    w.close()
                    continue
                count(w.open(timeout=2), i)
                conns.append(w)
            except OSError:
                cut += 1
    else:
        try:
            ident_id = f"claimer-{tag}"
            w = WhConn(("127.0.0.1", port), timeout=2, source=(source, 0))
            w.register(ident_id, Identity(ident_id), aux=True, timeout=2)
            conns.append(w)
            for i in range(1, n + 1):
                if time.time() >= end:
                    break
                m = w.claim(random.randrange(1, 1000000), timeout=2)
                if m is None and w.closed(0.1):
                    cut += 1
                    break
                count(m, i)
        except OSError:
            cut += 1
    res = {"kind": kind, "source": source, "counts": counts, "first_limited": first_limited,
           "cut": cut, "seconds": round(time.time() - t0, 2)}
    with open(out, "w") as f:
        f.write(json.dumps(res) + "\n")
    # hold the channels (bounded), answering pings
    while time.time() < t0 + lifetime:
        for w in conns:
            try:
                w.next_msg(0.05)
            except OSError:
                pass
        time.sleep(0.05)
    for w in conns:
        w.close()
    return 0


def main(a):
    source = None
    if "--source" in a:
        i = a.index("--source")
        source = a[i + 1]
        del a[i:i + 2]
    lifetime = None
    if "--lifetime" in a:
        i = a.index("--lifetime")
        lifetime = float(a[i + 1])
        del a[i:i + 2]
    if a[0] == "opened":
        return cmd_opened(a[1])
    if a[0] == "answer":
        return cmd_answer(a[1])
    if a[0] == "leaks":
        secrets = None
        if "--secrets" in a:
            i = a.index("--secrets")
            secrets = a[i + 1]
            del a[i:i + 2]
        paths = a[1].split(",")
        return cmd_leaks(paths, a[2:], secrets)
    if a[0] == "intrude":
        return cmd_intrude(int(a[1]), a[2], a[3], a[4])
    if a[0] == "claim":
        return cmd_claim(int(a[1]), a[2], int(a[3]), a[4], a[5], source)
    if a[0] == "flood":
        secs = float(a[5])
        return cmd_flood(int(a[1]), a[2], a[3], int(a[4]), secs, a[6],
                         lifetime if lifetime is not None else secs)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
