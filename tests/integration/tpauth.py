"""Registration proof for the raw-socket tests (PROTOCOL.md, "Challenge"): Ed25519 identities
through libsodium (ctypes: the library tcpunch itself links, so no extra Python package), the
hello signature and the admit proof of a shared secret.

    ident = Identity("alice")            # deterministic: the same name gives the same key
    nonce = read_challenge(sock_file)     # or take m["nonce"] from the first line
    msg = hello_msg(ident, nonce, "alice", endpoints=[], secret=b"...")  # a dict to send
"""
import base64
import ctypes
import ctypes.util
import hashlib
import hmac
import json
import socket
import time

CONTEXT = b"tcpunch-hello-v1\0"
_LIB = []


def _sodium():
    if not _LIB:
        name = ctypes.util.find_library("sodium") or "libsodium.so.23"
        lib = ctypes.CDLL(name)
        if lib.sodium_init() < 0:
            raise RuntimeError("sodium_init failed")
        _LIB.append(lib)
    return _LIB[0]


def b64(data):
    return base64.b64encode(data).decode()


class Identity:
    """An Ed25519 key pair made from the SHA-256 of name: stable across test processes."""

    def __init__(self, name):
        lib = _sodium()
        seed = hashlib.sha256(b"tcpunch-test:" + name.encode()).digest()
        self.pk = ctypes.create_string_buffer(32)
        self.sk = ctypes.create_string_buffer(64)
        if lib.crypto_sign_seed_keypair(self.pk, self.sk, seed) != 0:
            raise RuntimeError("crypto_sign_seed_keypair failed")
        self.key = b64(self.pk.raw)

    def sign(self, msg):
        sig = ctypes.create_string_buffer(64)
        lib = _sodium()
        lib.crypto_sign_detached(sig, None, msg, ctypes.c_ulonglong(len(msg)), self.sk)
        return sig.raw


def hello_sig(ident, nonce_b64, ident_id):
    return b64(ident.sign(CONTEXT + base64.b64decode(nonce_b64) + ident_id.encode()))


def admit(secret, nonce_b64):
    """admit = HMAC-SHA-256(SHA-256(secret file contents), nonce)."""
    key = hashlib.sha256(secret).digest()
    return b64(hmac.new(key, base64.b64decode(nonce_b64), hashlib.sha256).digest())


def hello_msg(ident, nonce_b64, ident_id, endpoints=None, secret=None, **extra):
    m = {"type": "hello", "version": 1, "id": ident_id,
         "endpoints": endpoints if endpoints is not None else [],
         "key": ident.key, "sig": hello_sig(ident, nonce_b64, ident_id)}
    if secret is not None:
        m["admit"] = admit(secret, nonce_b64)
    m.update(extra)
    return m


def is_challenge(m):
    """A well-formed challenge: version 1 and a 32-byte nonce in padded base64."""
    if not isinstance(m, dict) or m.get("type") != "challenge" or m.get("version") != 1:
        return False
    try:
        return len(base64.b64decode(m.get("nonce", ""), validate=True)) == 32
    except (ValueError, TypeError):
        return False


class LineConn:
    """Newline-delimited JSON over a connected socket self.s (set by the subclass), with the
    reads bounded in time: what the raw-socket tests share."""

    buf = b""

    def send(self, data):
        self.s.sendall(data.encode() if isinstance(data, str) else data)

    def msg(self, obj):
        self.send(json.dumps(obj, separators=(",", ":")) + "\n")

    def line(self, timeout=5.0):
        """The next line as a dict ({"raw": bytes} when not JSON); None on EOF/reset/timeout."""
        end = time.time() + timeout
        while b"\n" not in self.buf:
            left = end - time.time()
            if left <= 0:
                return None
            self.s.settimeout(left)
            try:
                d = self.s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                return None
            if not d:
                return None
            self.buf += d
        raw, self.buf = self.buf.split(b"\n", 1)
        try:
            return json.loads(raw)
        except ValueError:
            return {"raw": raw}

    def closed(self, timeout=3.0):
        """True when the server closes (EOF or reset) within timeout; unread input is dropped."""
        end = time.time() + timeout
        while time.time() < end:
            self.s.settimeout(max(0.01, end - time.time()))
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                return False
            except (ConnectionResetError, BrokenPipeError):
                return True
            if not d:
                return True
        return False
