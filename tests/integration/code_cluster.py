#!/usr/bin/env python3
"""Wormhole codes across the instances of a cluster (PROTOCOL.md 20.5, "In a cluster"), for
test_code_cluster.sh: raw mailbox clients (registered main connections speaking code-*), a
Redis client for the directory keys, and the bus forger of test_cluster_bus.sh for `code`
messages. The maker's instance holds the channel; a claimer on another instance goes through it.

usage: code_cluster.py SCENARIO REDIS_PORT PREFIX SECRETFILE NAME=PORT...
Scenarios: exchange race abort gone expiry distinct forged insider slow limits (instance C:
--code-rate 5) crash (C is killed) outage (stops Redis)
Prints ok/FAIL lines; exit status = number of failures. Every wait is bounded."""
import base64
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "adversarial"))
from advpeer import Identity, ServerConn  # noqa: E402
import busforge  # noqa: E402
import tpauth  # noqa: E402

scenario, redis_port, prefix, secret = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
PORT = dict(a.split("=", 1) for a in sys.argv[5:])
PORT = {k: int(v) for k, v in PORT.items()}
R = tpauth.Report("code_cluster " + scenario)
uid = tpauth.id_maker(os.getpid())
b64 = tpauth.b64


class Peer(ServerConn):
    """A main registration on instance inst (from source address src)."""

    def __init__(self, inst, name="p", src=None):
        super().__init__(("127.0.0.1", PORT[inst]), source=(src, 0) if src else None)
        self.inst = inst
        self.id = uid(name)
        w = self.register(self.id, Identity(self.id))
        if not w or w.get("type") != "welcome":
            raise RuntimeError(f"{self.id} not registered on {inst}: {w!r}")

    def expect(self, timeout=5.0):
        return self.next_msg(timeout) or {}


def redis(*args):
    r = busforge.Resp(redis_port)
    r.cmd(*args)
    return r.reply()


def key_of(n):
    return f"{prefix}code:{n}"


def key_gone(n, wait=3.0):
    end = time.time() + wait
    while time.time() < end:
        if redis("GET", key_of(n)) is None:
            return True
        time.sleep(0.05)
    return False


def cmdstat(name):
    """How many times Redis ran command name (INFO commandstats)."""
    info = redis("INFO", "commandstats").decode()
    for ln in info.splitlines():
        if ln.startswith(f"cmdstat_{name}:"):
            return int(ln.split("calls=", 1)[1].split(",", 1)[0])
    return 0


def is_err(m, code):
    return m.get("type") == "error" and m.get("code") == code and m.get("fatal") is False


def open_code(maker, ttl=None):
    """code-open then code-post with random bytes: (channel, opened, post)."""
    maker.msg({"type": "code-open", **({"ttl": ttl} if ttl else {})})
    o = maker.expect()
    if o.get("type") != "code-opened":
        raise RuntimeError(f"code-open on {maker.inst}: {o!r}")
    post = {"type": "code-post", "channel": o["channel"], "share": b64(os.urandom(32)),
            "ad": b64(os.urandom(200))}
    maker.msg(post)
    return o["channel"], o, post


def answer_of(n):
    return {"type": "code-answer", "channel": n, "share": b64(os.urandom(32)),
            "ad": b64(os.urandom(77)), "tag": b64(os.urandom(64))}


def claimed_ok(c, n, o, post, label):
    m = c.expect()
    R.check(m.get("type") == "code-claimed" and m.get("channel") == n and m.get("sid") == o["sid"]
            and m.get("share") == post["share"] and m.get("ad") == post["ad"],
            f"{label}: code-claimed carries the maker's sid, share and ad byte for byte ({str(m)[:90]})")
    return m.get("type") == "code-claimed"


def exchange():
    maker = Peer("A", "maker")
    n, o, post = open_code(maker)
    R.check(redis("GET", key_of(n)) == b"A", f"the directory names A for channel {n}")
    c = Peer("B", "claimer")
    c.msg({"type": "code-claim", "channel": n})
    if not claimed_ok(c, n, o, post, "claim on B of a code on A"):
        return
    ans = answer_of(n)
    c.msg(ans)
    m = maker.expect()
    R.check(m == ans, f"the maker on A gets the answer from B unchanged ({str(m)[:80]})")
    # a second answer stays on B: the bus carries only what the exchange allows
    c.msg(ans)
    m = c.expect()
    R.check(is_err(m, "unexpected-type") and "this side" in m.get("message", ""),
            f"a second answer is refused by B itself ({m})")
    conf = {"type": "code-confirm", "channel": n, "tag": b64(os.urandom(64))}
    maker.msg(conf)
    m = c.expect()
    R.check(m == conf, f"the claimer on B gets the confirm from A unchanged ({str(m)[:80]})")
    # a line out of turn from the claimer: refused without consequence
    c.msg({"type": "code-confirm", "channel": n, "tag": b64(os.urandom(64))})
    m = c.expect()
    R.check(is_err(m, "unexpected-type"), f"a confirm from the claimer is refused ({m})")
    R.check(maker.expect(1.0) == {}, "nothing reached the maker for it")


def race():
    for k, (x_inst, y_inst) in enumerate([("A", "B"), ("B", "A"), ("B", "B"), ("B", "B")]):
        maker = Peer("A", "maker")
        n, o, post = open_code(maker)
        time.sleep(0.1)
        x, y = Peer(x_inst, "x"), Peer(y_inst, "y")
        # both claims leave before either answer can come back
        x.msg({"type": "code-claim", "channel": n})
        y.msg({"type": "code-claim", "channel": n})
        mx, my = x.expect(), y.expect()
        won = [m for m in (mx, my) if m.get("type") == "code-claimed"]
        lost = [m for m in (mx, my) if is_err(m, "code-unknown")]
        R.check(len(won) == 1 and len(lost) == 1,
                f"round {k}: claims from {x_inst} and {y_inst}: exactly one wins "
                f"({mx.get('type')}/{mx.get('code')}, {my.get('type')}/{my.get('code')})")
        for p in (maker, x, y):
            p.s.close()


def abort():
    # the claimer on B aborts: the maker on A hears code-wrong, the number leaves the directory
    maker = Peer("A", "maker")
    n, o, post = open_code(maker)
    c = Peer("B", "claimer")
    c.msg({"type": "code-claim", "channel": n})
    if claimed_ok(c, n, o, post, "claim before the claimer's abort"):
        c.msg({"type": "code-abort", "channel": n})
        m = maker.expect()
        R.check(is_err(m, "code-wrong"), f"the claimer's abort on B reaches the maker on A as code-wrong ({m})")
        R.check(key_gone(n), f"channel {n} left the directory after the abort")
    # Redis forgot its scripts (SCRIPT FLUSH, a failover): a release answered NOSCRIPT is sent
    # again whole
    redis("SCRIPT", "FLUSH")
    maker = Peer("A", "maker")
    n, o, post = open_code(maker)
    time.sleep(0.1)
    maker.msg({"type": "code-abort", "channel": n})  # withdrawn before any claim
    R.check(key_gone(n), f"after SCRIPT FLUSH, channel {n} still left the directory")
    # the maker on A aborts after the answer: the claimer on B hears code-wrong
    maker = Peer("A", "maker")
    n, o, post = open_code(maker)
    c = Peer("B", "claimer")
    c.msg({"type": "code-claim", "channel": n})
    if claimed_ok(c, n, o, post, "claim before the maker's abort"):
        c.msg(answer_of(n))
        m = maker.expect()
        R.check(m.get("type") == "code-answer", f"the answer reached the maker ({str(m)[:60]})")
        maker.msg({"type": "code-abort", "channel": n})
        m = c.expect()
        R.check(is_err(m, "code-wrong"), f"the maker's abort on A reaches the claimer on B as code-wrong ({m})")
        R.check(key_gone(n), f"channel {n} left the directory after the maker's abort")


def gone():
    # the maker leaves mid-exchange: the claimer on B hears code-wrong
    maker = Peer("A", "maker")
    n, o, post = open_code(maker)
    c = Peer("B", "claimer")
    c.msg({"type": "code-claim", "channel": n})
    if claimed_ok(c, n, o, post, "claim before the maker leaves"):
        maker.s.close()
        m = c.expect()
        R.check(is_err(m, "code-wrong"), f"the maker's disconnect reaches the claimer on B as code-wrong ({m})")
    R.check(key_gone(n), f"channel {n} left the directory with its maker")
    # the maker leaves before any claim: the number goes, a claim from B is code-unknown
    maker = Peer("A", "maker")
    n, o, post = open_code(maker)
    time.sleep(0.1)
    maker.s.close()
    R.check(key_gone(n), f"channel {n} left the directory when its maker left unclaimed")
    c = Peer("B", "claimer")
    c.msg({"type": "code-claim", "channel": n})
    m = c.expect()
    R.check(is_err(m, "code-unknown"), f"a claim from B after the maker left: code-unknown ({m})")
    # the claimer on B leaves mid-exchange: the maker on A hears code-wrong
    maker = Peer("A", "maker")
    n, o, post = open_code(maker)
    c = Peer("B", "claimer")
    c.msg({"type": "code-claim", "channel": n})
    if claimed_ok(c, n, o, post, "claim before the claimer leaves"):
        c.s.close()
        m = maker.expect()
        R.check(is_err(m, "code-wrong"), f"the claimer's disconnect on B reaches the maker on A as code-wrong ({m})")
        R.check(key_gone(n), f"channel {n} left the directory after its claimer left")


def expiry():
    maker = Peer("A", "maker")
    n, o, post = open_code(maker, ttl=1)
    R.check(o.get("ttl") == 1, f"the server took ttl 1 ({o.get('ttl')})")
    R.check(redis("GET", key_of(n)) == b"A", f"the directory names A for channel {n}")
    ttl = redis("TTL", key_of(n))
    R.check(isinstance(ttl, int) and 1 < ttl <= 1 + 90, f"its key expires after ttl plus the slack ({ttl} s)")
    m = maker.expect(4.0)
    R.check(is_err(m, "code-expired"), f"the maker hears code-expired ({m})")
    R.check(key_gone(n, 1.0), f"the expired channel {n} left the directory at once")
    c = Peer("B", "claimer")
    c.msg({"type": "code-claim", "channel": n})
    m = c.expect()
    R.check(is_err(m, "code-unknown"), f"a claim from B of the expired code: code-unknown ({m})")


def distinct():
    """Many channels open at once on both instances, from many source addresses (a source may
    hold 4): every number is handed out once, and the directory names its holder."""
    peers, got = [], {}
    for s in range(24):
        for inst in ("A", "B"):
            for _ in range(4):
                peers.append(Peer(inst, "d", src=f"127.0.{1 + s // 200}.{2 + s % 200 + (100 if inst == 'B' else 0)}"))
    for p in peers:
        p.msg({"type": "code-open"})
    for p in peers:
        m = p.expect()
        if m.get("type") != "code-opened":
            R.bad(f"an open on {p.inst} refused: {m}")
            return
        got.setdefault(m["channel"], []).append(p.inst)
    dup = {n: who for n, who in got.items() if len(who) > 1}
    R.check(len(got) == len(peers) and not dup,
            f"{len(peers)} channels open on A and B: {len(got)} distinct numbers "
            f"(handed out twice: {sorted(dup.items())[:5]})")
    wrong = [n for n, who in got.items() if redis("GET", key_of(n)) != who[0].encode()]
    R.check(not wrong, f"the directory names the holder of every channel (wrong: {wrong[:5]})")
    sha0, eval0 = cmdstat("evalsha"), cmdstat("eval")
    for p in peers:
        p.s.close()
    left = [n for n in got if not key_gone(n, 0.5)]
    R.check(not left, f"every number left the directory with its maker (left: {left[:5]})")
    sha, ev = cmdstat("evalsha") - sha0, cmdstat("eval") - eval0
    # (each peer's unregistration is one EVAL of its own, cl_withdraw)
    R.check(sha >= len(peers) and ev < len(peers) + 10,
            f"the releases ran the cached script by SHA: {sha} EVALSHA, {ev} EVAL for "
            f"{len(peers)} releases and unregistrations")


def sign(msg, chan_inst, secret_path):
    """A bus message as an instance with secret_path would publish it on chan_inst's channel."""
    import hashlib
    import hmac
    body = json.dumps(msg, separators=(",", ":")).encode()
    chan = busforge.chan(prefix, chan_inst)
    mac = hmac.new(busforge.bus_key(secret_path),
                   b"tcpunch-cluster-bus-v1\0" + chan.encode() + b"\0" + body,
                   hashlib.sha512).digest()[:32]
    return busforge.publish(redis_port, chan, b"v1." + mac.hex().encode() + b"." + body)


def now_us(offset_s=0.0):
    return int((time.time() + offset_s) * 1e6)


def forge_claim(n, secret_path, t_offset_s=0.0, ref=7):
    msg = {"type": "code", "claimer": "B", "ref": ref, "channel": n,
           "line": json.dumps({"type": "code-claim", "channel": n}, separators=(",", ":")),
           "sender": "B", "t": now_us(t_offset_s)}
    return sign(msg, "A", secret_path)


def forged():
    maker = Peer("A", "maker")
    n, o, post = open_code(maker)
    time.sleep(0.1)
    wrong = os.path.join(os.path.dirname(secret), "wrong.secret")
    with open(wrong, "wb") as f:
        f.write(os.urandom(32))
    R.check(forge_claim(n, wrong) == 1, "a claim signed with another secret published to A")
    R.check(forge_claim(n, secret, t_offset_s=-60) == 1, "a correctly signed claim 60 s old published to A")
    time.sleep(0.5)
    R.check(maker.expect(0.5) == {}, "the maker heard nothing of either")
    c = Peer("B", "claimer")
    c.msg({"type": "code-claim", "channel": n})
    claimed_ok(c, n, o, post, "a real claim after the forgeries")
    # the control: the same claim signed and fresh is taken, so the refusals above were the
    # MAC's and the clock's
    maker2 = Peer("A", "maker")
    n2, o2, post2 = open_code(maker2)
    time.sleep(0.1)
    forge_claim(n2, secret, ref=9)
    time.sleep(0.5)
    c2 = Peer("B", "claimer")
    c2.msg({"type": "code-claim", "channel": n2})
    m = c2.expect()
    R.check(is_err(m, "code-unknown"), f"control: a fresh signed claim took channel {n2} ({m})")


def insider():
    """An instance with the secret that is buggy or hostile: lines for a claim on B that did not
    go to it, lines out of the exchange's order, an error no mailbox sends, a gone for a claim
    that is not its own. None reaches a peer or changes the exchange, which then completes."""
    maker = Peer("A", "maker")
    n, o, post = open_code(maker)
    spy = busforge.Resp(redis_port)
    spy.cmd("SUBSCRIBE", busforge.chan(prefix, "A"))
    spy.reply()
    c = Peer("B", "claimer")
    c.msg({"type": "code-claim", "channel": n})
    if not claimed_ok(c, n, o, post, "the claim the insider watches"):
        return
    ref, end = None, time.time() + 5
    while ref is None and time.time() < end:
        m = spy.reply()
        if isinstance(m, list) and m[0] == b"message":
            body = busforge.body_of(m[2])
            if body.get("type") == "code" and body.get("channel") == n:
                ref = body["ref"]
    if not R.check(ref is not None, f"the insider saw B's claim of channel {n} (ref {ref})"):
        return

    def to_b(sender, line=None, gone=False, channel=n, r=None):
        msg = {"type": "code", "claimer": "B", "ref": ref if r is None else r, "channel": channel,
               **({"gone": True} if gone else {"line": json.dumps(line, separators=(",", ":"))}),
               "sender": sender, "t": now_us()}
        return sign(msg, "B", secret)

    confirm = {"type": "code-confirm", "channel": n, "tag": b64(os.urandom(64))}
    to_b("X", confirm)  # from an instance the claim did not go to
    to_b("A", dict(o, type="code-claimed", share=post["share"], ad=post["ad"]))  # claimed twice
    to_b("A", {"type": "error", "code": "internal", "message": "INJECTED", "fatal": False})
    to_b("A", confirm, channel=n + 1 if n < 999999 else n - 1)  # another channel, same ref
    to_b("A", gone=True, r=ref + 1)  # another ref: not B's claim of n
    # towards the maker: a gone for channel n from an instance that does not hold its claim
    sign({"type": "code", "claimer": "X", "ref": ref, "channel": n, "gone": True, "sender": "X",
          "t": now_us()}, "A", secret)
    time.sleep(0.5)
    m = c.expect(0.5)
    R.check(m == {}, f"the claimer on B got nothing of the insider's lines ({m})")
    m = maker.expect(0.5)
    R.check(m == {}, f"the maker on A got nothing of the insider's gone ({m})")
    ans = answer_of(n)
    c.msg(ans)
    m = maker.expect()
    R.check(m == ans, "the exchange goes on: the answer reaches the maker")
    conf = {"type": "code-confirm", "channel": n, "tag": b64(os.urandom(64))}
    maker.msg(conf)
    m = c.expect()
    R.check(m == conf, f"the exchange goes on: the maker's confirm reaches the claimer ({str(m)[:60]})")


def code_keys():
    out, cursor = set(), b"0"
    for _ in range(1000):
        cursor, keys = redis("SCAN", cursor, "MATCH", prefix + "code:*", "COUNT", "1000")
        out.update(keys)
        if cursor == b"0":
            break
    return out


def slow():
    """Redis stops taking writes for 2.6 s (CLIENT PAUSE WRITE; a connection's later commands
    wait behind its paused one, so this stays under the 3 s after which an instance takes Redis
    for down): an open times out after 2 s (overloaded), and the number Redis then reserves for
    it late is given back, not left to block the number for ttl + 90 s."""
    before = code_keys()
    maker = Peer("A", "maker")
    redis("CLIENT", "PAUSE", "2600", "WRITE")
    t0 = time.time()
    maker.msg({"type": "code-open"})
    m = maker.expect(6.0)
    R.check(is_err(m, "overloaded"), f"an open while Redis takes no writes: overloaded after "
            f"{(time.time() - t0) * 1000:.0f} ms ({m})")
    end, left = time.time() + 6, None
    while time.time() < end:
        time.sleep(0.2)
        left = code_keys() - before
        if time.time() - t0 > 3.0 and not left:
            break
    R.check(not left, f"the late reservation was given back (left: {sorted(left)[:3]})")
    # and opens work again (within the reconnection's back-off, had A lost Redis after all)
    end, n = time.time() + 8, None
    while n is None and time.time() < end:
        maker.msg({"type": "code-open"})
        m = maker.expect()
        if m.get("type") == "code-opened":
            n = m["channel"]
        else:
            time.sleep(0.5)
    R.check(n is not None and redis("GET", key_of(n)) == b"A", f"the next open got channel {n}")
    for inst in ("B", "C"):  # the scenarios after this one register new ids everywhere
        end = time.time() + 8
        while time.time() < end:
            try:
                Peer(inst, "up").s.close()
                break
            except RuntimeError:
                time.sleep(0.5)


def limits():
    """Instance C runs with --code-rate 5 (a burst of 5): a claimer on C of a code on A spends
    C's tokens, and its failed exchange (its own abort) 2 more, as a local claimer's would."""
    maker = Peer("A", "maker")
    n, o, post = open_code(maker)
    c = Peer("C", "claimer")
    c.msg({"type": "code-claim", "channel": n})
    if not claimed_ok(c, n, o, post, "a claim on C of a code on A"):
        return
    # one claim at a time per connection
    c.msg({"type": "code-claim", "channel": n})
    m = c.expect()
    R.check(is_err(m, "unexpected-type"), f"a second claim while one is held elsewhere: refused ({m})")
    c.msg({"type": "code-abort", "channel": n})
    m = maker.expect()
    R.check(is_err(m, "code-wrong"), f"the abort from C reached the maker ({m})")
    # 5 - 1 (the claim) - 2 (its failure) = 2 claims left on C for this address
    got = []
    for k in range(4):
        p = Peer("C", "guess")
        p.msg({"type": "code-claim", "channel": 999990 - k})
        got.append(p.expect().get("code"))
        p.s.close()
    R.check(got == ["code-unknown", "code-unknown", "rate-limited", "rate-limited"],
            f"after the failed exchange 2 claims are left on C ({got})")


def crash():
    """The maker's instance C dies (SIGKILL by the caller once this prints CHANNEL n, then it
    creates the file named by $CODE_CLUSTER_SYNC): its key stays in Redis, but a claim from A
    finds nobody on C's channel and is code-unknown at once, not after the 2 s wait."""
    maker = Peer("C", "maker", src="127.0.3.1")  # not the address "limits" spent C's tokens of
    n, o, post = open_code(maker)
    print(f"CHANNEL {n}", flush=True)
    sync, end = os.environ["CODE_CLUSTER_SYNC"], time.time() + 10
    while not os.path.exists(sync) and time.time() < end:
        time.sleep(0.05)
    R.check(redis("GET", key_of(n)) == b"C", f"the dead instance's key for channel {n} is still there")
    c = Peer("A", "claimer")
    t0 = time.time()
    c.msg({"type": "code-claim", "channel": n})
    m = c.expect()
    took = time.time() - t0
    R.check(is_err(m, "code-unknown") and took < 1.5,
            f"a claim of a code on the dead instance: code-unknown after {took * 1000:.0f} ms ({m})")


def latency():
    """Not a test of the suite (BENCHMARKS.md, "Codes across instances"): $CODE_CLUSTER_N
    exchanges (default 100) with the claimer on the maker's instance A and as many with it on
    B, alternating; the medians and p90 of claim -> code-claimed and of the whole exchange
    (claim to code-confirm received), and their ratio across/local."""
    import statistics
    rounds = int(os.environ.get("CODE_CLUSTER_N", "100"))
    res = {"A": [], "B": []}
    for _ in range(rounds):
        for inst in ("A", "B"):
            maker = Peer("A", "m")
            n, o, post = open_code(maker)
            c = Peer(inst, "c")
            time.sleep(0.002)  # the post is in before the claim
            t0 = time.perf_counter()
            c.msg({"type": "code-claim", "channel": n})
            ok = c.expect().get("type") == "code-claimed"
            t1 = time.perf_counter()
            c.msg(answer_of(n))
            ok = ok and maker.expect().get("type") == "code-answer"
            maker.msg({"type": "code-confirm", "channel": n, "tag": b64(os.urandom(64))})
            ok = ok and c.expect().get("type") == "code-confirm"
            t2 = time.perf_counter()
            maker.s.close()
            c.s.close()
            if ok:
                res[inst].append(((t1 - t0) * 1e6, (t2 - t0) * 1e6))
    if not R.check(len(res["A"]) == rounds and len(res["B"]) == rounds,
                   f"every exchange completed ({len(res['A'])} + {len(res['B'])} of {rounds} each)"):
        return
    for inst, where in (("A", "on the maker's instance"), ("B", "on another instance")):
        cl = sorted(x[0] for x in res[inst])
        ex = sorted(x[1] for x in res[inst])
        print(f"claimer {where}: claim->claimed median {statistics.median(cl):.0f} us, p90 "
              f"{cl[len(cl) * 9 // 10]:.0f} us; exchange median {statistics.median(ex):.0f} us, "
              f"p90 {ex[len(ex) * 9 // 10]:.0f} us")
    ratio = statistics.median(x[1] for x in res["B"]) / statistics.median(x[1] for x in res["A"])
    print(f"exchange across / local (medians): {ratio:.2f}")


def outage():
    """Redis goes down (SHUTDOWN, last scenario): opens and claims across instances are refused
    with a passing error, a claim on the channel's own instance goes on. Redis comes back empty
    (a restart without persistence): the channels of A are in the directory again."""
    maker = Peer("A", "maker")
    n, o, post = open_code(maker)
    maker2 = Peer("A", "maker")
    n2, o2, post2 = open_code(maker2)
    other = Peer("A", "other")
    c = Peer("B", "claimer")
    local = Peer("A", "local")
    try:
        redis("SHUTDOWN", "NOSAVE")
    except (EOFError, OSError):
        pass
    time.sleep(1.0)  # the instances see their connections close
    other.msg({"type": "code-open"})
    m = other.expect()
    R.check(is_err(m, "overloaded"), f"code-open with Redis down: overloaded ({m})")
    c.msg({"type": "code-claim", "channel": n})
    m = c.expect()
    R.check(is_err(m, "overloaded"), f"a claim from B with Redis down: overloaded ({m})")
    local.msg({"type": "code-claim", "channel": n})
    claimed_ok(local, n, o, post, "a claim on A itself with Redis down")
    # the same port, nothing in it: A sets its numbers again when it rejoins
    srv = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                            "--save", "", "--appendonly", "no", "--dir", os.path.dirname(secret)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end, back = time.time() + 12, None
        while time.time() < end and back != b"A":
            time.sleep(0.2)
            try:
                back = redis("GET", key_of(n2))
            except (EOFError, OSError):
                back = None
        R.check(back == b"A", f"after Redis came back empty, the directory names A for channel {n2} again")
        c2 = None
        while c2 is None and time.time() < end:  # B rejoins on its own back-off too
            try:
                c2 = Peer("B", "claimer")
            except RuntimeError:
                time.sleep(0.3)
        if not R.check(c2 is not None, "B registers new ids again"):
            return
        c2.msg({"type": "code-claim", "channel": n2})
        claimed_ok(c2, n2, o2, post2, "a claim from B after the rejoin")
    finally:
        try:
            redis("SHUTDOWN", "NOSAVE")
        except (EOFError, OSError):
            pass
        try:
            srv.wait(5)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait(5)


def main():
    fn = {"exchange": exchange, "race": race, "abort": abort, "gone": gone, "expiry": expiry,
          "distinct": distinct, "forged": forged, "insider": insider, "slow": slow, "limits": limits, "crash": crash, "outage": outage,
          "latency": latency}.get(scenario)
    if not fn:
        print(f"unknown scenario {scenario}", file=sys.stderr)
        sys.exit(100)
    try:
        fn()
    except (RuntimeError, OSError, KeyError, ValueError) as e:
        R.bad(f"{type(e).__name__}: {e}")
    sys.exit(R.status())


main()
