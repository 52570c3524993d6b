"""The wormhole mailbox of a real tcpunch-rendezvous against raw sockets (PROTOCOL.md section
20): every rule a hostile peer could test, one mode per server configuration.

    wh_raw.py MODE HOST PORT
    main    the exchange, one claim, aborts, disconnects, foreign channels, aux (--code-rate 0)
    expiry  --code-ttl 10: the ttl and a code-open's shorter one
    flood   --code-rate 20: an open flood is limited and cut, others are served; 4 per address;
            a failed claim costs its claimer 2 more tokens
    max     --code-max 3: server-full
    nocode  --no-code
Sources are distinct 127.0.0.0/8 addresses so that per-address limits apply where a mode wants
them and nowhere else. Every loop is bounded in count and time.
"""
import base64
import os
import sys
import time

from tpauth import Identity, LineConn, Report, dial, hello_msg, id_maker

MODE, HOST, PORT = sys.argv[1], sys.argv[2], int(sys.argv[3])
R = Report("wh " + MODE)
uid = id_maker(os.getpid())


def b64(data):
    return base64.b64encode(data).decode()


SHARE = b64(bytes(range(32)))
AD_A = b64(b"tcpunch-wormhole-1 A" + bytes(range(100)))
AD_B = b64(b"tcpunch-wormhole-1 B" + bytes(range(50, 150)))
TAG_B = b64(bytes(range(64, 128)))
TAG_A = b64(bytes(range(128, 192)))


class Peer(LineConn):
    """A registered control connection from source address src."""

    def __init__(self, name, src="127.0.0.1", aux=False):
        super().__init__(dial((HOST, PORT), source=(src, 0)))
        self.id = uid(name)
        nonce = self.read_challenge()
        extra = {"aux": True} if aux else {}
        self.msg(hello_msg(Identity(name), nonce, self.id, **extra))
        w = self.next_msg()
        if not w or w.get("type") != "welcome":
            raise RuntimeError(f"{self.id}: no welcome: {w}")
        self.features = self.first.get("features", [])

    def ask(self, obj, timeout=3.0):
        self.msg(obj)
        return self.next_msg(timeout)

    def error(self, m):
        """The code of m when it is a non-fatal error line, else None."""
        if isinstance(m, dict) and m.get("type") == "error" and m.get("fatal") is False:
            return m.get("code")
        return None

    def alive(self):
        """Still registered: a ping is answered."""
        m = self.ask({"type": "ping", "seq": 7})
        return isinstance(m, dict) and m.get("type") == "pong"

    def quiet(self, timeout=0.5):
        """Nothing arrives within timeout."""
        return self.next_msg(timeout) is None


def open_post(maker, **extra):
    """Opens and posts a channel; its number (None when refused)."""
    m = maker.ask({"type": "code-open", **extra})
    if not isinstance(m, dict) or m.get("type") != "code-opened":
        return None
    maker.msg({"type": "code-post", "channel": m["channel"], "share": SHARE, "ad": AD_A})
    return m


def t_exchange():
    a, b, c = Peer("maker"), Peer("claimer", aux=True), Peer("third")
    R.check("code" in a.features, "challenge.features lists code")
    o = a.ask({"type": "code-open"})
    ok = isinstance(o, dict) and o.get("type") == "code-opened"
    R.check(ok and 1 <= o["channel"] <= 999 and len(base64.b64decode(o["sid"])) == 16
            and o["ttl"] == 600, f"code-open -> code-opened with channel, sid, ttl: {o}")
    if not ok:
        return
    ch = o["channel"]
    R.check(b.error(b.ask({"type": "code-claim", "channel": ch})) == "code-unknown",
            "a claim before the post: code-unknown")
    a.msg({"type": "code-post", "channel": ch, "share": SHARE, "ad": AD_A})
    R.check(a.quiet(), "code-post is answered with nothing")
    m = b.ask({"type": "code-claim", "channel": ch})
    R.check(isinstance(m, dict) and m.get("type") == "code-claimed" and m.get("channel") == ch
            and m.get("sid") == o["sid"] and m.get("share") == SHARE and m.get("ad") == AD_A,
            "an auxiliary connection claims: code-claimed carries the post byte for byte")
    R.check(c.error(c.ask({"type": "code-claim", "channel": ch})) == "code-unknown",
            "a second claim: code-unknown")
    # nobody but the claimer may answer, nobody but the maker confirm
    for who, obj, what in (
            (c, {"type": "code-answer", "channel": ch, "share": SHARE, "ad": AD_B, "tag": TAG_B},
             "a stranger's answer"),
            (a, {"type": "code-answer", "channel": ch, "share": SHARE, "ad": AD_B, "tag": TAG_B},
             "the maker's answer"),
            (b, {"type": "code-confirm", "channel": ch, "tag": TAG_A}, "the claimer's confirm"),
            (c, {"type": "code-abort", "channel": ch}, "a stranger's abort"),
            (c, {"type": "code-post", "channel": ch, "share": SHARE, "ad": AD_B},
             "a stranger's post"),
            (a, {"type": "code-post", "channel": ch, "share": SHARE, "ad": AD_B}, "a second post"),
    ):
        R.check(who.error(who.ask(obj)) == "unexpected-type" and who.alive(),
                f"{what}: unexpected-type, non-fatal")
    R.check(a.quiet(0.2) and b.quiet(0.2), "... and none of them reached the channel's sides")
    b.msg({"type": "code-answer", "channel": ch, "share": SHARE, "ad": AD_B, "tag": TAG_B})
    m = a.next_msg()
    R.check(isinstance(m, dict) and m.get("type") == "code-answer" and m.get("channel") == ch
            and m.get("share") == SHARE and m.get("ad") == AD_B and m.get("tag") == TAG_B,
            "the answer reaches the maker unchanged")
    a.msg({"type": "code-confirm", "channel": ch, "tag": TAG_A})
    m = b.next_msg()
    R.check(isinstance(m, dict) and m.get("type") == "code-confirm" and m.get("tag") == TAG_A
            and m.get("channel") == ch, "the confirm reaches the claimer unchanged")
    R.check(c.error(c.ask({"type": "code-claim", "channel": ch})) == "code-unknown",
            "a claim after the exchange: code-unknown")
    R.check(a.error(a.ask({"type": "code-open"})) == "unexpected-type",
            "a second open while the channel lives (DONE): unexpected-type")
    # a late abort of the claimer in DONE still reaches the maker
    b.msg({"type": "code-abort", "channel": ch})
    R.check(a.error(a.next_msg()) == "code-wrong", "a claimer's abort in DONE: maker code-wrong")
    o = a.ask({"type": "code-open"})
    R.check(isinstance(o, dict) and o.get("type") == "code-opened", "the maker may open again")
    # a whole exchange, then the maker leaves in DONE: the claimer hears nothing
    a.msg({"type": "code-post", "channel": o["channel"], "share": SHARE, "ad": AD_A})
    d = Peer("claimer2")
    d.ask({"type": "code-claim", "channel": o["channel"]})
    d.msg({"type": "code-answer", "channel": o["channel"], "share": SHARE, "ad": AD_B,
           "tag": TAG_B})
    a.next_msg()
    a.msg({"type": "code-confirm", "channel": o["channel"], "tag": TAG_A})
    R.check(isinstance(d.next_msg(), dict), "a second exchange completes")
    a.close()
    R.check(d.quiet(0.5) and d.alive(), "the maker leaving in DONE: nothing to the claimer")
    for p in (b, c, d):
        p.close()


def t_abort_and_gone():
    a, b, c = Peer("mk2"), Peer("cl2"), Peer("third2")
    o = open_post(a)
    b.ask({"type": "code-claim", "channel": o["channel"]})
    b.msg({"type": "code-answer", "channel": o["channel"], "share": SHARE, "ad": AD_B,
           "tag": TAG_B})
    a.next_msg()
    a.msg({"type": "code-abort", "channel": o["channel"]})
    R.check(b.error(b.next_msg()) == "code-wrong", "the maker's abort: the claimer gets code-wrong")
    R.check(c.error(c.ask({"type": "code-claim", "channel": o["channel"]})) == "code-unknown",
            "the aborted channel is gone (claim: code-unknown)")
    R.check(b.error(b.ask({"type": "code-answer", "channel": o["channel"], "share": SHARE,
                           "ad": AD_B, "tag": TAG_B})) == "unexpected-type",
            "... and its claimer can no longer act on it")
    # the claimer aborts after its claim
    o = open_post(a)
    b.ask({"type": "code-claim", "channel": o["channel"]})
    b.msg({"type": "code-abort", "channel": o["channel"]})
    R.check(a.error(a.next_msg()) == "code-wrong", "the claimer's abort: the maker gets code-wrong")
    # the maker leaves before a claim, then with a claim in progress
    o = open_post(a)
    a.close()
    time.sleep(0.3)
    R.check(b.error(b.ask({"type": "code-claim", "channel": o["channel"]})) == "code-unknown",
            "maker gone before the claim: claimer code-unknown")
    a = Peer("mk3")
    o = open_post(a)
    b.ask({"type": "code-claim", "channel": o["channel"]})
    a.close()
    R.check(b.error(b.next_msg()) == "code-wrong", "maker gone mid-exchange: claimer code-wrong")
    # the claimer leaves mid-exchange
    a = Peer("mk4")
    o = open_post(a)
    b.ask({"type": "code-claim", "channel": o["channel"]})
    b.close()
    R.check(a.error(a.next_msg()) == "code-wrong", "claimer gone mid-exchange: maker code-wrong")
    R.check(c.error(c.ask({"type": "code-claim", "channel": o["channel"]})) == "code-unknown",
            "... and the channel is burned")
    # withdraw: the maker's abort before a claim deletes it
    o = open_post(a)
    a.msg({"type": "code-abort", "channel": o["channel"]})
    R.check(a.quiet(0.3), "a withdrawn channel: nothing to the maker")
    R.check(c.error(c.ask({"type": "code-claim", "channel": o["channel"]})) == "code-unknown",
            "a withdrawn channel cannot be claimed")
    # roles: an auxiliary connection cannot open; a maker cannot claim
    x = Peer("aux3", aux=True)
    R.check(x.error(x.ask({"type": "code-open"})) == "unexpected-type" and x.alive(),
            "code-open on an auxiliary connection: unexpected-type, non-fatal")
    o = open_post(a)
    o2 = open_post(c)
    R.check(a.error(a.ask({"type": "code-claim", "channel": o2["channel"]})) == "unexpected-type",
            "a connection holding a channel cannot claim another")
    R.check(c.error(c.ask({"type": "code-claim", "channel": o2["channel"]})) == "unexpected-type",
            "... not even its own")
    for p in (a, c, x):
        p.close()


def t_unregistered():
    s = LineConn(dial((HOST, PORT)))
    s.read_challenge()
    s.msg({"type": "code-open"})
    m = s.line()
    R.check(isinstance(m, dict) and m.get("code") == "not-registered" and m.get("fatal") is True,
            "code-open before hello: not-registered, fatal")
    s.close()
    p = Peer("badfield")
    p.msg({"type": "code-claim", "channel": 1, "extra": 1})
    m = p.line()
    R.check(isinstance(m, dict) and m.get("code") == "bad-field" and p.closed(),
            "an unknown member: bad-field, fatal")


def t_expiry():
    a, b = Peer("exp-a", "127.0.0.21"), Peer("exp-b", "127.0.0.22")
    t0 = time.time()
    o10 = open_post(a)
    o1 = open_post(b, ttl=1)
    R.check(o10 and o10["ttl"] == 10, f"--code-ttl 10: code-opened says ttl 10: {o10}")
    R.check(o1 and o1["ttl"] == 1, f"code-open ttl 1 under --code-ttl 10: ttl 1: {o1}")
    m = b.next_msg(4)
    R.check(b.error(m) == "code-expired" and time.time() - t0 < 3.5,
            f"the 1 s channel expires within 1-3 s: {m} after {time.time() - t0:.1f} s")
    c = Peer("exp-c", "127.0.0.23")
    R.check(c.error(c.ask({"type": "code-claim", "channel": o1["channel"]})) == "code-unknown",
            "an expired channel: claim code-unknown")
    R.check(a.quiet(0.1), "the 10 s channel is still there at 3 s")
    m = a.next_msg(12)
    took = time.time() - t0
    R.check(a.error(m) == "code-expired" and 9.5 <= took <= 12.5,
            f"the 10 s channel expires after 10-12 s: {m} after {took:.1f} s")
    R.check(c.error(c.ask({"type": "code-claim", "channel": o10["channel"]})) == "code-unknown",
            "... and cannot be claimed")
    R.check(isinstance(a.ask({"type": "code-open"}), dict), "its maker may open again")


def t_flood():
    # an open flood from one address: the burst (10) goes through, then rate-limited, then cut
    f = Peer("flood", "127.0.0.31")
    ok = refused = 0
    fatal = False
    for _ in range(40):
        m = f.ask({"type": "code-open"})
        if isinstance(m, dict) and m.get("type") == "code-opened":
            ok += 1
            f.msg({"type": "code-abort", "channel": m["channel"]})  # withdraw: open the next
        elif f.error(m) == "rate-limited":
            refused += 1
        else:
            fatal = isinstance(m, dict) and m.get("code") == "rate-limited" and m.get("fatal")
            break
    R.check(10 <= ok <= 11, f"--code-rate 20: the burst of 10 opens went through ({ok})")
    R.check(refused == 10 and fatal and f.closed(),
            f"then 10 non-fatal rate-limited ({refused}), then a fatal one and the close")
    # others are served meanwhile, at once
    t0 = time.time()
    g = Peer("other", "127.0.0.32")
    m = g.ask({"type": "code-open"})
    R.check(isinstance(m, dict) and m.get("type") == "code-opened" and time.time() - t0 < 1.0,
            f"another address opens at once after the flood ({time.time() - t0:.2f} s)")
    # four open channels per address
    ps = [Peer(f"four{i}", "127.0.0.33") for i in range(5)]
    got = [ps[i].ask({"type": "code-open"}) for i in range(5)]
    R.check(all(isinstance(m, dict) and m.get("type") == "code-opened" for m in got[:4])
            and ps[4].error(got[4]) == "rate-limited",
            "four open channels per address, the fifth: rate-limited")
    # a failed exchange costs its claimer 3 tokens in all: the 5th claim is refused (not the 11th)
    x = Peer("guesser", "127.0.0.40")
    n = 0
    for i in range(12):
        mk = Peer(f"gm{i}", f"127.0.1.{i + 1}")
        o = open_post(mk)
        m = x.ask({"type": "code-claim", "channel": o["channel"]})
        if x.error(m) == "rate-limited":
            break
        n += 1
        mk.msg({"type": "code-abort", "channel": o["channel"]})
        mk.next_msg(1)
        x.next_msg(2)  # its code-wrong
        mk.close()
    R.check(n == 4, f"failed claims cost 3 tokens: 4 claims, the 5th refused ({n})")


def t_max():
    ps = [Peer(f"max{i}", f"127.0.0.{50 + i}") for i in range(4)]
    got = [p.ask({"type": "code-open"}) for p in ps]
    R.check(all(isinstance(m, dict) and m.get("type") == "code-opened" for m in got[:3]),
            "--code-max 3: three channels open")
    R.check(ps[3].error(got[3]) == "server-full" and ps[3].alive(),
            "the fourth: server-full, non-fatal")
    ps[0].msg({"type": "code-abort", "channel": got[0]["channel"]})
    time.sleep(0.2)
    m = ps[3].ask({"type": "code-open"})
    R.check(isinstance(m, dict) and m.get("type") == "code-opened", "room again once one ended")


def t_nocode():
    p = Peer("nocode")
    R.check("code" not in p.features, "--no-code: challenge.features without code")
    for obj in ({"type": "code-open"}, {"type": "code-claim", "channel": 5}):
        R.check(p.error(p.ask(obj)) == "unexpected-type" and p.alive(),
                f"--no-code: {obj['type']} is unexpected-type, non-fatal")


MODES = {"main": [t_exchange, t_abort_and_gone, t_unregistered], "expiry": [t_expiry],
         "flood": [t_flood], "max": [t_max], "nocode": [t_nocode]}
for t in MODES[MODE]:
    try:
        t()
    except Exception as e:  # a test that breaks is a failure, and the next one still runs
        R.bad(f"{t.__name__}: {type(e).__name__}: {e}")
sys.exit(R.status())
