"""Attackers for the adversarial tests: a hostile peer that speaks the real protocol
(PROTOCOL.md) and a fake rendezvous server. Python 3, standard library only; the crypto is
libsodium through ctypes (tests/integration/tpauth.py), the same library tcpunch links.

A hostile peer (a stranger with its own key pair):

    srv = ServerConn(("127.0.0.1", port))          # reads the challenge
    srv.register("mallory", Identity("mallory"))    # signed hello -> welcome (dict)
    punch = srv.connect_to("bob")                   # connect -> punch (dict), pings answered
    sh = Shake(Identity("mallory"), "mallory", punch)   # our side of section 8
    c = PeerConn(ep_tuple(punch["observed"]))      # a direct TCP connection to bob's punch port
    offer = c.line()                                # the responder's shake (bob sends first)
    line = sh.answer(offer)                         # our signed initiator shake (bytes, with \n)
    rl = RelayConn(("127.0.0.1", port), punch["session"], punch["token"])  # joins the relay
    rl.send(line + b"X" * 8000)                     # early bytes: relayed after bob's `relayed`
    tx, rx = sh.keys()                              # the stream keys (section 8.4), after confirm
    st = Sealer(tx); c.send(st.header + st.seal(b"data") + st.seal(b"", final=True))

Why the attacker can sign before the responder has joined the relay: the responder uses ONE
ephemeral key for every connection of a punch and sends its shake on every connection that
reaches its punch port, so a direct connection gives the attacker eph_R; the initiator's
signature covers eph_R (section 8.2) and nothing that only the relay connection shows.

A fake server (the hostile or lying rendezvous):

    fs = FakeServer()                               # listens on 127.0.0.1:<free port>
    p = fs.accept()                                 # one peer: challenge, its hello -> p.hello
    p.welcome()                                     # welcome with observed = its source
    p.msg({"type": "punch", ...})                   # any line, valid or not

Every read is bounded in time; nothing here loops without a bound.
"""
import base64
import ctypes
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from tpauth import (  # noqa: E402  (path set just above)
    Identity, LineConn, _sodium, b64, dial, error_codes, hello_msg, is_challenge)

__all__ = ["Identity", "ServerConn", "RelayConn", "PeerConn", "Shake", "Sealer", "Opener",
           "stranger_session",
           "FakeServer", "FakePeer", "ep_tuple", "ep_str", "b64", "error_codes", "hello_msg",
           "is_challenge"]

SHAKE_SIGN_PREFIX = b"tcpunch-shake-v1\0"
SHAKE_KEYS_PREFIX = b"tcpunch-keys-v1"
RECORD_MAX = 16384
ABYTES = 17
TAG_MESSAGE = 0
TAG_FINAL = 3


def ep_tuple(text):
    """"1.2.3.4:5" or "[::1]:5" -> (host, port)."""
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def ep_str(addr):
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _dial(addr, timeout=5.0, source=None, nodelay=True, rcvbuf=0):
    # a socket bound to a source port can be rebound at once for the next attempt
    return dial(addr, timeout, source, reuse=True, nodelay=nodelay, rcvbuf=rcvbuf)


class _Conn(LineConn):
    def recv_some(self, timeout=2.0, limit=1 << 20):
        """Whatever arrives within timeout (buffered bytes first), at most limit bytes."""
        out, self.buf = self.buf, b""
        end = time.time() + timeout
        while len(out) < limit:
            left = end - time.time()
            if left <= 0:
                break
            self.s.settimeout(left)
            try:
                d = self.s.recv(65536)
            except (socket.timeout, ConnectionResetError, OSError):
                break
            if not d:
                break
            out += d
        return out


class ServerConn(_Conn):
    """A control connection to a rendezvous: challenge read at once, nonce in self.nonce.
    nodelay and rcvbuf: as for dial (a flooder that never reads wants a small rcvbuf)."""

    def __init__(self, addr, timeout=5.0, source=None, nodelay=True, rcvbuf=0):
        self.buf = b""
        self.s = _dial(addr, timeout, source, nodelay, rcvbuf)
        self.challenge = self.line(timeout)
        if not is_challenge(self.challenge):
            raise RuntimeError(f"no challenge from {ep_str(addr)}: {self.challenge!r}")
        self.nonce = self.challenge["nonce"]

    def register(self, ident_id, ident, endpoints=None, secret=None, **extra):
        """Signed hello; returns the server's answer (welcome or error) as a dict."""
        self.msg(hello_msg(ident, self.nonce, ident_id, endpoints, secret, **extra))
        return self.next_msg()

    def connect_to(self, target, timeout=5.0):
        """connect -> the punch (or the error) as a dict."""
        self.msg({"type": "connect", "target": target})
        return self.next_msg(timeout)


class RelayConn(_Conn):
    """A relay connection joined for session/token (section 5.11). self.joined: the answer
    (relayed or error) once wait() returned; until then bytes sent are early bytes."""

    def __init__(self, addr, session, token, timeout=5.0, secret=None):
        self.buf = b""
        self.s = _dial(addr, timeout)
        ch = self.line(timeout)
        if not is_challenge(ch):
            raise RuntimeError(f"no challenge from the relay: {ch!r}")
        m = {"type": "relay", "version": 1, "session": session, "token": token}
        if secret is not None:
            from tpauth import with_admit
            with_admit(secret, ch["nonce"], m)  # the admit covers session and token
        self.msg(m)
        self.joined = None

    def wait(self, timeout=10.0):
        self.joined = self.line(timeout)
        return self.joined


class PeerConn(_Conn):
    """A plain TCP connection to a peer (a punch port). A peer opens its punch listener when
    the punch order arrives, so a refused dial is retried every 20 ms for up to `wait` s."""

    def __init__(self, addr, timeout=5.0, source=None, wait=3.0):
        self.buf = b""
        end = time.time() + wait
        while True:
            try:
                self.s = _dial(addr, timeout, source)
                return
            except ConnectionRefusedError:
                if time.time() >= end:
                    raise
                time.sleep(0.02)


class Shake:
    """Our side of the handshake (PROTOCOL.md section 8) for one punch: one ephemeral key for
    every connection, as tcpunch does."""

    def __init__(self, ident, self_id, punch, role=None):
        lib = _sodium()
        self.lib = lib
        self.ident = ident
        self.self_id = self_id
        self.peer_id = punch["peer"]
        self.session = punch["session"]
        self.role = role or punch.get("role", "initiator")
        self.eph_pk = ctypes.create_string_buffer(32)
        self.eph_sk = ctypes.create_string_buffer(32)
        lib.crypto_kx_keypair(self.eph_pk, self.eph_sk)
        self.peer_eph = None
        self.peer_key = None

    def _transcript(self, signer_role, eph_o, eph_s, key_o, key_s, id_o, id_s):
        letter = b"I" if signer_role == "initiator" else b"R"
        return (SHAKE_SIGN_PREFIX + self.session.encode() + letter + eph_o + eph_s + key_o + key_s
                + id_o.encode() + b"\0" + id_s.encode() + b"\0")

    def _sign(self):
        t = self._transcript(self.role, self.peer_eph, self.eph_pk.raw, self.peer_key,
                             self.ident.pk.raw, self.peer_id, self.self_id)
        return self.ident.sign(t)

    def line(self, sig=False, **override):
        """Our shake as bytes with its newline; fields may be overridden (or set to None to
        leave them out) to make a broken one."""
        m = {"type": "shake", "version": 1, "session": self.session, "from": self.self_id,
             "to": self.peer_id, "key": self.ident.key, "eph": b64(self.eph_pk.raw)}
        if sig:
            m["sig"] = b64(self._sign())
        for k, v in override.items():
            if v is None:
                m.pop(k, None)
            else:
                m[k] = v
        return (json.dumps(m, separators=(",", ":")) + "\n").encode()

    def take(self, offer):
        """Records the other side's key and eph from its shake (a dict)."""
        self.peer_eph = base64.b64decode(offer["eph"])
        self.peer_key = base64.b64decode(offer["key"])

    def answer(self, offer, **override):
        """Initiator: our signed shake in answer to the responder's offer (a dict)."""
        self.take(offer)
        return self.line(sig=True, **override)

    def confirm(self, offer):
        """Responder: the confirm for the initiator's shake (a dict)."""
        self.take(offer)
        m = {"type": "confirm", "session": self.session, "sig": b64(self._sign())}
        return (json.dumps(m, separators=(",", ":")) + "\n").encode()

    def keys(self):
        """(tx, rx): the stream keys of section 8.4."""
        lib = self.lib
        ktx = ctypes.create_string_buffer(32)
        krx = ctypes.create_string_buffer(32)
        fn = (lib.crypto_kx_client_session_keys if self.role == "initiator"
              else lib.crypto_kx_server_session_keys)
        if fn(krx, ktx, self.eph_pk, self.eph_sk, self.peer_eph) != 0:
            raise RuntimeError("crypto_kx failed")
        init = self.role == "initiator"
        eph_i = self.eph_pk.raw if init else self.peer_eph
        eph_r = self.peer_eph if init else self.eph_pk.raw
        key_i = self.ident.pk.raw if init else self.peer_key
        key_r = self.peer_key if init else self.ident.pk.raw
        msg = SHAKE_KEYS_PREFIX + self.session.encode() + eph_i + eph_r + key_i + key_r

        def bind(kx):
            out = ctypes.create_string_buffer(32)
            lib.crypto_generichash(out, ctypes.c_size_t(32), msg, ctypes.c_ulonglong(len(msg)),
                                   kx, ctypes.c_size_t(32))
            return out.raw
        return bind(ktx.raw), bind(krx.raw)


def stranger_session(port, target, me):
    """A stranger me (its own key) registers at the server 127.0.0.1:port, orders a punch to
    target, dials target's punch port and completes the handshake as the initiator (section
    8). Returns (server connection, peer connection, tx key, rx key); asserts each step."""
    ident = Identity(me)
    srv = ServerConn(("127.0.0.1", port))
    w = srv.register(me, ident)
    assert w and w.get("type") == "welcome", w
    punch = srv.connect_to(target)
    assert punch and punch.get("type") == "punch", punch
    sh = Shake(ident, me, punch)
    c = PeerConn(ep_tuple(punch["observed"]))
    offer = c.line()
    c.send(sh.answer(offer))
    assert c.line().get("type") == "confirm"
    tx, rx = sh.keys()
    return srv, c, tx, rx


def _state():
    lib = _sodium()
    lib.crypto_secretstream_xchacha20poly1305_statebytes.restype = ctypes.c_size_t
    return ctypes.create_string_buffer(lib.crypto_secretstream_xchacha20poly1305_statebytes())


class Sealer:
    """The sending half of an encrypted stream (section 8.5): self.header first, then
    seal(data) for each record."""

    def __init__(self, key):
        self.lib = _sodium()
        self.st = _state()
        h = ctypes.create_string_buffer(24)
        self.lib.crypto_secretstream_xchacha20poly1305_init_push(self.st, h, key)
        self.header = h.raw

    def seal(self, data, final=False):
        out = b""
        chunks = [data[i:i + RECORD_MAX] for i in range(0, len(data), RECORD_MAX)] or [b""]
        for i, chunk in enumerate(chunks):
            tag = TAG_FINAL if final and i == len(chunks) - 1 else TAG_MESSAGE
            c = ctypes.create_string_buffer(len(chunk) + ABYTES)
            clen = ctypes.c_ulonglong(0)
            self.lib.crypto_secretstream_xchacha20poly1305_push(
                self.st, c, ctypes.byref(clen), chunk, ctypes.c_ulonglong(len(chunk)), None,
                ctypes.c_ulonglong(0), ctypes.c_ubyte(tag))
            out += clen.value.to_bytes(2, "big") + c.raw[:clen.value]
        return out


class Opener:
    """The receiving half: feed(bytes) -> list of (data, final); raises ValueError on a bad
    record."""

    def __init__(self, key):
        self.lib = _sodium()
        self.key = key
        self.st = None
        self.buf = b""

    def feed(self, data):
        self.buf += data
        out = []
        if self.st is None:
            if len(self.buf) < 24:
                return out
            self.st = _state()
            if self.lib.crypto_secretstream_xchacha20poly1305_init_pull(
                    self.st, self.buf[:24], self.key) != 0:
                raise ValueError("bad stream header")
            self.buf = self.buf[24:]
        while len(self.buf) >= 2:
            n = int.from_bytes(self.buf[:2], "big")
            if n < ABYTES or n > RECORD_MAX + ABYTES:
                raise ValueError(f"bad record length {n}")
            if len(self.buf) < 2 + n:
                break
            c, self.buf = self.buf[2:2 + n], self.buf[2 + n:]
            m = ctypes.create_string_buffer(n)
            mlen = ctypes.c_ulonglong(0)
            tag = ctypes.c_ubyte(0)
            if self.lib.crypto_secretstream_xchacha20poly1305_pull(
                    self.st, m, ctypes.byref(mlen), ctypes.byref(tag), c, ctypes.c_ulonglong(n),
                    None, ctypes.c_ulonglong(0)) != 0:
                raise ValueError("record failed authentication")
            out.append((m.raw[:mlen.value], tag.value == TAG_FINAL))
        return out


class FakePeer(_Conn):
    """A peer connected to the FakeServer."""

    def __init__(self, sock, addr, nonce):
        self.buf = b""
        self.s = sock
        self.addr = addr
        self.nonce = nonce
        self.hello = None

    def welcome(self, **extra):
        m = {"type": "welcome", "version": 1, "id": self.hello.get("id", "x"),
             "observed": ep_str(self.addr), "keepalive": 60}
        m.update(extra)
        self.msg(m)


class FakeServer:
    """A rendezvous that says whatever the test wants. Listens on host:port (port 0: free).
    Its connections are of the class Peer (a subclass may set its own)."""

    Peer = FakePeer
    features = None  # challenge.features to offer (a list of strings), None: the member absent

    def __init__(self, host="127.0.0.1", port=0):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.ls = socket.socket(fam, socket.SOCK_STREAM)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind((host, port))
        self.ls.listen(16)
        self.addr = self.ls.getsockname()[:2]

    def accept(self, timeout=10.0, read_hello=True):
        """The next connection: challenge sent, its first line read into .hello."""
        self.ls.settimeout(timeout)
        s, addr = self.ls.accept()
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        nonce = b64(os.urandom(32))
        p = self.Peer(s, addr[:2], nonce)
        ch = {"type": "challenge", "version": 1, "nonce": nonce}
        if self.features is not None:
            ch["features"] = self.features
        p.msg(ch)
        if read_hello:
            p.hello = p.line(timeout)
        return p

    def close(self):
        self.ls.close()


if __name__ == "__main__":
    # Self-check of the crypto plumbing: a handshake between two Shake objects, then a stream.
    a_id, b_id = Identity("adv-a"), Identity("adv-b")
    punch_a = {"peer": "b", "session": "0" * 31 + "1", "role": "initiator"}
    punch_b = {"peer": "a", "session": "0" * 31 + "1", "role": "responder"}
    a, b = Shake(a_id, "a", punch_a), Shake(b_id, "b", punch_b)
    offer = json.loads(b.line())
    answer = json.loads(a.answer(offer))
    b.confirm(answer)
    atx, arx = a.keys()
    btx, brx = b.keys()
    assert atx == brx and arx == btx, "stream keys disagree"
    s = Sealer(atx)
    got = Opener(brx).feed(s.header + s.seal(b"hello") + s.seal(b"", final=True))
    assert got == [(b"hello", False), (b"", True)], got
    print("advpeer self-check: ok")
