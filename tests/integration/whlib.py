"""The wormhole codes from a test's side (docs/design/wormhole.md section 6): CPace over
ristretto255 and SHA-512 through libsodium (ctypes, the library tcpunch links: no extra Python
package), the ADs, the code's PRS and CI, and a control connection that speaks the mailbox's
code-* messages. For the integration and adversarial tests, which play a guesser, a lying
server or the other side of a real tcpunch; it is a second, independent implementation written
from the draft's formulas, and `python3 whlib.py` checks it against the draft's vectors (the
same ones tests/unit/test_cpace.c checks proto/cpace.c against).

    c = Cpace("B", prs=b"guitar-ribbon", ci=code_ci(7), sid=sid, ad=my_ad)
    share = c.share                                  # Yb
    isk = c.finish(ya, ada)                          # None: the share does not decode (abort)
    tb = c.tag(); ok = c.check(ta)                   # explicit key confirmation
    key = cpace_bind(isk, b"tcpunch session v1")

    w = WhConn(("127.0.0.1", port))                  # challenge read
    w.register("mallory", Identity("mallory"), aux=True)
    w.claim(7)  -> {"type": "code-claimed", ...} or an error (dict)

Every read is bounded in time; nothing here loops without a bound.
"""
import base64
import ctypes
import hashlib
import hmac
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tpauth import Identity, LineConn, _sodium, b64, dial, hello_msg, is_challenge  # noqa: E402

__all__ = ["Cpace", "cpace_bind", "lv", "lv_cat", "code_ci", "code_prs", "make_ad", "parse_ad",
           "WORDS", "parse_code", "find_code", "WhConn", "Identity", "b64", "unb64",
           "random_share", "leak_hits"]

LABEL = b"tcpunch-wormhole-1"
DSI = b"CPaceRistretto255"
DSI_ISK = b"CPaceRistretto255_ISK"
S_IN_BYTES = 128
SESSION_LABEL = b"tcpunch session v1"
SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def unb64(s):
    return base64.b64decode(s, validate=True)


def leb128(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def lv(b):
    """The draft's prepend_len."""
    return leb128(len(b)) + b


def lv_cat(*parts):
    return b"".join(lv(p) for p in parts)


def _gen_string(prs, ci, sid):
    zpad = max(0, S_IN_BYTES - len(lv(DSI)) - len(lv(prs)) - 1)
    return lv_cat(DSI, prs, b"\0" * zpad, ci, sid)


def generator(prs, ci, sid):
    lib = _sodium()
    h = hashlib.sha512(_gen_string(prs, ci, sid)).digest()
    g = ctypes.create_string_buffer(32)
    lib.crypto_core_ristretto255_from_hash(g, h)
    return g.raw


def scalar_mult_vfy(y, x):
    """encode(y * decode(x)), or None (the draft's G.I: x does not decode, or the identity)."""
    if len(x) != 32 or x[31] & 0x80:
        return None
    out = ctypes.create_string_buffer(32)
    if _sodium().crypto_scalarmult_ristretto255(out, y, x) != 0 or out.raw == b"\0" * 32:
        return None
    return out.raw


def random_scalar():
    y = ctypes.create_string_buffer(32)
    _sodium().crypto_core_ristretto255_scalar_random(y)
    return y.raw


def random_share():
    """A valid ristretto255 element nobody knows the log of w.r.t. any generator."""
    p = ctypes.create_string_buffer(32)
    _sodium().crypto_core_ristretto255_random(p)
    return p.raw


class Cpace:
    """One side of CPace, initiator-responder transcript (transcript_ir), with the explicit
    key confirmation of the draft (Ta over A's message, Tb over B's)."""

    def __init__(self, role, prs, ci, sid, ad, scalar=None):
        assert role in ("A", "B")
        self.role, self.sid, self.ad = role, sid, ad
        self.y = scalar or random_scalar()
        g = generator(prs, ci, sid)
        out = ctypes.create_string_buffer(32)
        if _sodium().crypto_scalarmult_ristretto255(out, self.y, g) != 0:
            raise RuntimeError("scalar_mult failed")
        self.share = out.raw
        self.isk = self.mac_key = self.own_tag = self.peer_tag = None

    def finish(self, peer_share, peer_ad):
        if peer_share == self.share:
            return None  # our own share reflected (wormhole.md 2.1)
        k = scalar_mult_vfy(self.y, peer_share)
        if k is None:
            return None
        if self.role == "A":
            ya, ada, yb, adb = self.share, self.ad, peer_share, peer_ad
        else:
            ya, ada, yb, adb = peer_share, peer_ad, self.share, self.ad
        self.isk = isk_ir(self.sid, k, ya, ada, yb, adb)
        self.mac_key = hashlib.sha512(b"CPaceMac" + self.sid + self.isk).digest()
        ta = hmac.new(self.mac_key, lv_cat(ya, ada), hashlib.sha512).digest()
        tb = hmac.new(self.mac_key, lv_cat(yb, adb), hashlib.sha512).digest()
        self.own_tag, self.peer_tag = (ta, tb) if self.role == "A" else (tb, ta)
        return self.isk

    def tag(self):
        return self.own_tag

    def check(self, tag):
        return self.peer_tag is not None and hmac.compare_digest(tag, self.peer_tag)


def isk_ir(sid, k, ya, ada, yb, adb):
    return hashlib.sha512(lv_cat(DSI_ISK, sid, k) + lv_cat(ya, ada) + lv_cat(yb, adb)).digest()


def cpace_bind(isk, label=SESSION_LABEL):
    """cpace_binding_key: HKDF-Expand-SHA512(ISK, "tcpunch cpace bind v1" || lv(label), 32)."""
    return hmac.new(isk, b"tcpunch cpace bind v1" + lv(label) + b"\x01",
                    hashlib.sha512).digest()[:32]


# ---- the code

def _words():
    with open(os.path.join(SRC, "proto", "words.txt")) as f:
        return [w.strip() for w in f if w.strip() and not w.startswith("#")]


WORDS = _words()
CODE_RE = re.compile(r"Code: ([1-9][0-9]{0,5}(?:-[a-z]{3,8}){2,3})\b")


def parse_code(text):
    """'7-guitar-ribbon' -> (7, ['guitar', 'ribbon'])."""
    parts = text.strip().split("-")
    return int(parts[0]), parts[1:]


def find_code(text):
    """The code a maker printed ("Code: N-w-w" on its stderr), or None."""
    m = CODE_RE.search(text)
    return m.group(1) if m else None


def code_prs(words):
    return "-".join(words).encode()


def code_ci(channel):
    return lv_cat(LABEL, str(channel).encode())


def make_ad(side, mode, ident_id, key):
    """ad = lv_cat(label, mode, id, key): label "tcpunch-wormhole-1 A" (maker) or "... B"."""
    return lv_cat(LABEL + b" " + side.encode(), mode.encode(), ident_id.encode(), key)


def parse_ad(ad):
    """(side, mode, id, key) of an AD, or None when it is not four lv parts."""
    parts, i = [], 0
    while i < len(ad) and len(parts) < 5:
        n, shift = 0, 0
        while i < len(ad):
            b = ad[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        parts.append(ad[i:i + n])
        i += n
    if len(parts) != 4 or i != len(ad) or not parts[0].startswith(LABEL + b" "):
        return None
    return parts[0][len(LABEL) + 1:].decode(), parts[1].decode(), parts[2].decode(), parts[3]


def leak_hits(data, words, secrets=()):
    """What of a code's words and of secrets (bytes) appears in data (the bytes a recorder
    saw) or in the base64 members of its JSON lines, decoded. A code leaks as its PRS
    ("guitar-ribbon"), as the code ("7-guitar-ribbon"), or word by word as JSON strings
    ("guitar") or hyphenated parts; a secret raw, in hex or in base64. A list of descriptions;
    empty when nothing leaked. (A bare word is not searched for in binary data: three random
    letters turn up there by chance.)"""
    hits = []
    blobs = [("the bytes", data)]
    for tok in re.findall(rb'"([A-Za-z0-9+/]{8,}={0,2})"', data):
        try:
            blobs.append(("a base64 member", base64.b64decode(tok, validate=True)))
        except ValueError:
            pass
    prs = "-".join(words).encode()
    for where, blob in blobs:
        if prs in blob.lower() or "".join(words).encode() in blob.lower():
            hits.append(f"the PRS {prs.decode()} in {where}")
        for s in secrets:
            forms = (s, s.hex().encode(), base64.b64encode(s), base64.b64encode(s).rstrip(b"="))
            if any(f in blob for f in forms) or s.hex().encode() in blob.lower():
                hits.append(f"a secret ({s[:4].hex()}...) in {where}")
    for w in words:
        # a JSON string in any case; hyphenated as in the code, lower case (a bare word is
        # three random letters away in the relayed bytes)
        if (re.search(rb'(?i)"' + w.encode() + rb'"', data) or
                re.search(rb'-' + w.encode() + rb'(?![a-z])|(?<![a-z])' + w.encode() + rb'-', data)):
            hits.append(f"the word {w} in the bytes")
    return sorted(set(hits))


# ---- the control connection

class WhConn(LineConn):
    """A control connection speaking the mailbox's messages; pings answered while waiting."""

    def __init__(self, addr, timeout=5.0, source=None):
        LineConn.__init__(self, dial(addr, timeout, source, reuse=True, nodelay=True))
        self.challenge = self.line(timeout)
        if not is_challenge(self.challenge):
            raise RuntimeError(f"no challenge: {self.challenge!r}")
        self.nonce = self.challenge["nonce"]

    def features(self):
        return self.challenge.get("features") or []

    def register(self, ident_id, ident, aux=False, timeout=5.0):
        extra = {"aux": True} if aux else {}
        self.msg(hello_msg(ident, self.nonce, ident_id, [], **extra))
        return self.next_msg(timeout)

    def ask(self, m, timeout=5.0):
        self.msg(m)
        return self.next_msg(timeout)

    def open(self, ttl=None, timeout=5.0):
        m = {"type": "code-open"}
        if ttl is not None:
            m["ttl"] = ttl
        return self.ask(m, timeout)

    def post(self, channel, share, ad):
        self.msg({"type": "code-post", "channel": channel, "share": b64(share), "ad": b64(ad)})

    def claim(self, channel, timeout=5.0):
        return self.ask({"type": "code-claim", "channel": channel}, timeout)

    def answer(self, channel, share, ad, tag, timeout=5.0):
        return self.ask({"type": "code-answer", "channel": channel, "share": b64(share),
                         "ad": b64(ad), "tag": b64(tag)}, timeout)

    def confirm(self, channel, tag):
        self.msg({"type": "code-confirm", "channel": channel, "tag": b64(tag)})

    def abort(self, channel):
        self.msg({"type": "code-abort", "channel": channel})


def is_error(m, code=None):
    return isinstance(m, dict) and m.get("type") == "error" and (code is None or m.get("code") == code)


def _selfcheck():
    """The draft's Appendix B.3 vectors (as tests/unit/test_cpace.c has them), and the tags and
    binding key computed there from the draft's formulas."""
    h = bytes.fromhex
    ci = h("0b415f696e69746961746f720b425f726573706f6e646572")
    sid = h("7e4b4791d6a8ef019b936c79fb7f2c57")
    assert generator(b"Password", ci, sid) == h(
        "222b6b195fe84b1652badb6f6a3ae3d24341e7306967f0b8115b40d5698c7e56"), "generator"
    a = Cpace("A", b"Password", ci, sid, b"ADa",
              h("da3d23700a9e5699258aef94dc060dfda5ebb61f02a5ea77fad53f4ff0976d08"))
    b = Cpace("B", b"Password", ci, sid, b"ADb",
              h("d2316b454718c35362d83d69df6320f38578ed5984651435e2949762d900b80d"))
    assert a.share == h("d6bac480f2c386c394efc7c47adb9925dcd2630b64f240c50f8d0eec482b9157"), "Ya"
    assert b.share == h("3ea7e0b19560d7c0b0f5734f63b955286dfa8232b5ebe63324e2d9e7433f7258"), "Yb"
    isk_a, isk_b = a.finish(b.share, b"ADb"), b.finish(a.share, b"ADa")
    want = h("b69effbf61b51d56401c0f65601abe428de8206feaaf0e32198896dcae7b35cd"
             "2b38950a39dfd5d4a79164614c2984f7daa460b588c1e80c3fa2068af7900447")
    assert isk_a == want and isk_b == want, "ISK_IR"
    assert a.tag() == h("30478d28d83ae3b214295e91f4a3eb62999a8ed94575075db4a7d3bc3e4d26f1"
                        "6c51adba12dc7771372637a46b5134e0937cddd7d820bfdd83be335e339eb57a"), "Ta"
    assert b.tag() == h("e927a7da291676f8878caae9cb70407d2f14117e6f9ff9adcfda797c4bcf2bd2"
                        "fefd2ca3f2ddcce81b7386996c895b2f359010cc92069d5ff4ad49a977de79a6"), "Tb"
    assert a.check(b.tag()) and b.check(a.tag()), "tags cross-check"
    assert cpace_bind(want, b"tcpunch wormhole session") == h(
        "455a4d7bdb5f769a8a63e1e66222a5fcdb4f2d8d6868a6ef99714cf3822982cb"), "binding key"
    # a wrong password: both refuse the other's tag
    c = Cpace("B", b"Passwort", ci, sid, b"ADb")
    a2 = Cpace("A", b"Password", ci, sid, b"ADa")
    assert a2.finish(c.share, b"ADb") is not None and c.finish(a2.share, b"ADa") is not None
    assert not a2.check(c.tag()) and not c.check(a2.tag()), "a wrong password must not confirm"
    # the reflected share is refused
    assert a2.finish(a2.share, b"ADa") is None
    assert len(WORDS) == 256, "word list"
    ad = make_ad("A", "file", "alice", b"\1" * 32)
    assert parse_ad(ad) == ("A", "file", "alice", b"\1" * 32) and parse_ad(ad + b"x") is None
    assert not leak_hits(b'{"x":"' + base64.b64encode(os.urandom(48)) + b'"}', ["acorn", "apple"])
    assert leak_hits(b'{"code":"7-acorn-apple"}', ["acorn", "apple"])
    assert leak_hits(b'{"w":"Acorn"}', ["acorn", "apple"]) == ["the word acorn in the bytes"]
    assert leak_hits(b'{"a":"' + base64.b64encode(b"\3x" + b"acorn-apple") + b'"}', ["acorn", "apple"])
    sec = os.urandom(32)
    assert leak_hits(b'{"k":"' + sec.hex().encode() + b'"}', ["acorn", "apple"], [sec])
    assert leak_hits(b'{"k":"' + base64.b64encode(sec) + b'"}', ["acorn", "apple"], [sec])
    assert not leak_hits(b'{"k":"' + base64.b64encode(os.urandom(32)) + b'"}', ["acorn", "apple"], [sec])
    print("whlib self-check: ok (CPace against the draft's vectors, ADs, words)")


if __name__ == "__main__":
    _selfcheck()
