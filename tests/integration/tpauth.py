"""Registration proof for the raw-socket tests (PROTOCOL.md, "Challenge"): Ed25519 identities
through libsodium (ctypes: the library tcpunch itself links, so no extra Python package), the
hello signature and the admit proof of a shared secret.

    ident = Identity("alice")            # deterministic: the same name gives the same key
    nonce = read_challenge(sock_file)     # or take m["nonce"] from the first line
    msg = hello_msg(ident, nonce, "alice", endpoints=[], secret=b"...")  # a dict to send
    relay = with_admit(secret, nonce, {"type": "relay", ...})  # admit bound to the line

And what every raw-socket test script shares, so that none keeps its own copy:

    R = Report("auth basic")              # R.ok / R.bad / R.check print tagged lines, R.fails
    uid = id_maker(os.getpid())           # uid("alice") -> "alice-PID-1", "alice-PID-2", ...
    c = LineConn(dial(("127.0.0.1", port), source=("127.0.0.2", 0)))
    c.read_challenge()                    # c.first, and c.nonce (None when not a challenge)
    m = c.line()                          # the next line as a dict, bounded in time
"""
import base64
import ctypes
import ctypes.util
import hashlib
import hmac
import itertools
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


ADMIT_CONTEXT = b"tcpunch-admit-v1"


def _field(data):
    """One length-prefixed field of the admit input (two bytes, big-endian, then the bytes)."""
    return len(data).to_bytes(2, "big") + data


def endpoint_bytes(text):
    """An endpoint as the admit encodes it: 4 + address + port, or 6 + address + port."""
    host, port = text.rsplit(":", 1)
    if host.startswith("["):
        addr = b"\x06" + socket.inet_pton(socket.AF_INET6, host[1:-1])
    else:
        addr = b"\x04" + socket.inet_pton(socket.AF_INET, host)
    return addr + int(port).to_bytes(2, "big")


def admit_input(nonce_b64, msg):
    """The bytes the admit of the first line msg (a dict: hello, relay or probe) covers
    (PROTOCOL.md, "Admission")."""
    t = msg["type"]
    data = _field(ADMIT_CONTEXT) + _field(t.encode()) + _field(base64.b64decode(nonce_b64))
    if t == "hello":
        eps = msg.get("endpoints", [])
        data += _field(msg["id"].encode())
        data += _field(base64.b64decode(msg["key"]) if "key" in msg else b"")
        data += _field(msg.get("path", "any").encode())
        data += _field(b"\x01" if msg.get("aux") is True else b"\x00")
        data += _field(bytes([len(eps)]))
        for ep in eps:
            data += _field(endpoint_bytes(ep))
        bd = msg.get("birthday")
        if isinstance(bd, dict):  # only when present: without it, the input of before
            data += _field(b"birthday")
            data += _field(int(bd.get("k", 0)).to_bytes(2, "big") +
                           int(bd.get("m", 0)).to_bytes(2, "big"))
        # hello.features as the bits of the names the server knows, then replace (section 13)
        bits = 1 if "resume" in (msg.get("features") or []) else 0
        if bits:
            data += _field(b"features") + _field(bits.to_bytes(4, "big"))
        if msg.get("replace") is True:
            data += _field(b"replace")
    elif t == "relay":
        data += _field(msg["session"].encode()) + _field(msg["token"].encode())
    elif t == "probe":
        data += _field(msg.get("token", "").encode())
    else:
        raise ValueError(f"no admit for {t}")
    return data


def admit(secret, nonce_b64, msg):
    """admit = HMAC-SHA-256(SHA-256(secret file contents), admit_input(nonce, msg))."""
    key = hashlib.sha256(secret).digest()
    return b64(hmac.new(key, admit_input(nonce_b64, msg), hashlib.sha256).digest())


def with_admit(secret, nonce_b64, msg):
    """msg (a dict) with its admit member set; returns msg."""
    msg.pop("admit", None)
    msg["admit"] = admit(secret, nonce_b64, msg)
    return msg


def hello_msg(ident, nonce_b64, ident_id, endpoints=None, secret=None, **extra):
    m = {"type": "hello", "version": 1, "id": ident_id,
         "endpoints": endpoints if endpoints is not None else [],
         "key": ident.key, "sig": hello_sig(ident, nonce_b64, ident_id)}
    m.update(extra)
    if secret is not None and "admit" not in extra:
        with_admit(secret, nonce_b64, m)  # last: it covers the other fields
    return m


def is_challenge(m):
    """A well-formed challenge: version 1 and a 32-byte nonce in padded base64."""
    if not isinstance(m, dict) or m.get("type") != "challenge" or m.get("version") != 1:
        return False
    try:
        return len(base64.b64decode(m.get("nonce", ""), validate=True)) == 32
    except (ValueError, TypeError):
        return False


class Report:
    """The "ok   [TAG] what" and "FAIL [TAG] what" lines of a checking script, and the count
    of failures that becomes its exit status."""

    def __init__(self, tag):
        self.tag = tag
        self.fails = 0

    def ok(self, what):
        print(f"ok   [{self.tag}] {what}", flush=True)

    def bad(self, what):
        self.fails += 1
        print(f"FAIL [{self.tag}] {what}", flush=True)

    def check(self, cond, what):
        (self.ok if cond else self.bad)(what)
        return cond

    def status(self):
        """The exit status: the failures, at most 100 (a shell status is one byte)."""
        return min(self.fails, 100)


def id_maker(tag):
    """uid(base) -> "base-TAG-N" with N counting up from 1, so that the ids of one run differ
    from each other and from other runs'. tag: a string or number, or a function called for
    each id (a tag that changes with the time)."""
    seq = itertools.count(1)
    return lambda base: f"{base}-{tag() if callable(tag) else tag}-{next(seq)}"


def dial(addr, timeout=5.0, source=None, reuse=False, nodelay=False, rcvbuf=0, sndbuf=0):
    """A TCP connection to addr (host, port), IPv6 when the host has a colon: bound first to
    source (host, port) if given (with SO_REUSEADDR if reuse), with the buffer sizes set
    before the connect (they decide the window), TCP_NODELAY if nodelay."""
    s = socket.socket(socket.AF_INET6 if ":" in addr[0] else socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if sndbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    if source is not None:
        if reuse:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(source)
    s.connect(addr)
    if nodelay:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def rss_kib(pid):
    """VmRSS of process pid in KiB (0 when /proc does not say)."""
    with open(f"/proc/{pid}/status") as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    return 0


def error_codes(data):
    """The codes of the error lines in data (bytes, newline-delimited JSON), in order; "?" for
    an error without one. Other lines and pieces that are not JSON are passed over."""
    codes = []
    for raw in data.split(b"\n"):
        try:
            m = json.loads(raw)
        except ValueError:
            continue
        if isinstance(m, dict) and m.get("type") == "error":
            codes.append(m.get("code", "?"))
    return codes


class LineConn:
    """Newline-delimited JSON over a connected socket self.s (given, or set by the subclass),
    with the reads bounded in time: what the raw-socket tests share."""

    buf = b""
    # a line longer than this (with its newline) is returned as {"raw": bytes} even when it
    # is JSON, for the tests that check what the server sends stays within its line limit
    max_line = 0

    def __init__(self, sock=None):
        self.s = sock
        self.buf = b""

    def send(self, data):
        self.s.sendall(data.encode() if isinstance(data, str) else data)

    def msg(self, obj):
        self.send(json.dumps(obj, separators=(",", ":")) + "\n")

    def _next_line(self, timeout, errors):
        """The next line as bytes without its newline; None on EOF, timeout, or errors."""
        end = time.time() + timeout
        while b"\n" not in self.buf:
            left = end - time.time()
            if left <= 0:
                return None
            self.s.settimeout(left)
            try:
                d = self.s.recv(65536)
            except errors:
                return None
            if not d:
                return None
            self.buf += d
        raw, self.buf = self.buf.split(b"\n", 1)
        return raw

    def rawline(self, timeout=5.0):
        """The next line as bytes without its newline; None on EOF/reset/timeout or any other
        socket error."""
        return self._next_line(timeout, OSError)

    def line(self, timeout=5.0):
        """The next line as a dict ({"raw": bytes} when not JSON); None on EOF/reset/timeout."""
        raw = self._next_line(timeout, (socket.timeout, ConnectionResetError))
        if raw is None:
            return None
        if self.max_line and len(raw) + 1 > self.max_line:
            return {"raw": raw}
        try:
            return json.loads(raw)
        except ValueError:
            return {"raw": raw}

    def read_challenge(self, timeout=5.0):
        """Reads the first line into self.first; returns self.nonce, the challenge's nonce, or
        None when the first line is not a well-formed challenge."""
        self.first = self.line(timeout)
        self.nonce = self.first.get("nonce") if is_challenge(self.first) else None
        return self.nonce

    def next_msg(self, timeout=5.0):
        """The next line that is not a ping (pings are answered); None on timeout/EOF."""
        end = time.time() + timeout
        while True:
            m = self.line(max(0.01, end - time.time()))
            if m is None or not isinstance(m, dict) or m.get("type") != "ping":
                return m
            self.msg({"type": "pong", "seq": m.get("seq", 0)})

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

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass
