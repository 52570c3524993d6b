"""The ping flood (red-team item 4): K auxiliary registrations of one attacker id with tiny
receive buffers send N pings each and never read. Every pong used to be its own queued request
(~240 bytes held for a 25-byte line, the queue bound counted only the line), and input was read
without limit: ~5 MB held per connection. Now pings are rate-limited per connection (fatal
`too-many-pings`), and a connection whose answers are not read is not read either.

usage: ping_flood.py PORT SERVER_PID K N DIR
Writes DIR/started once registered; floods; prints rss_before and rss_peak (KiB); waits (at
most 60 s) for DIR/done, then prints one "code CODE" line per connection: the first error code
it received (none: no error line arrived)."""
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from advpeer import Identity, ServerConn, is_challenge  # noqa: E402

port, pid, k, n, d = (int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]),
                      sys.argv[5])
addr = ("127.0.0.1", port)


def rss():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Flooder(ServerConn):
    def __init__(self):
        self.buf = b""
        self.s = socket.socket()
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.s.settimeout(5)
        self.s.connect(addr)
        self.challenge = self.line(5)
        if not is_challenge(self.challenge):
            raise RuntimeError(f"no challenge: {self.challenge!r}")
        self.nonce = self.challenge["nonce"]


me = f"pf{os.getpid()}"
ident = Identity(me)
conns = []
for i in range(k):
    c = Flooder()
    w = c.register(me, ident, aux=True)
    if not w or w.get("type") != "welcome":
        sys.exit(f"registration {i} failed: {w!r}")
    conns.append(c)
base = rss()
open(os.path.join(d, "started"), "w").close()

ping = b"".join(b'{"type":"ping","seq":%d}\n' % i for i in range(n))
peak = base
for c in conns:
    c.s.setblocking(False)
    off = 0
    end = time.time() + 3
    while off < len(ping) and time.time() < end:
        try:
            off += c.s.send(ping[off:off + 65536])
        except BlockingIOError:
            time.sleep(0.005)
        except OSError:
            break  # dropped by the server
    peak = max(peak, rss())
time.sleep(1)
peak = max(peak, rss())
print("rss_before", base)
print("rss_peak", peak, flush=True)

end = time.time() + 60
while not os.path.exists(os.path.join(d, "done")) and time.time() < end:
    time.sleep(0.1)
for c in conns:
    c.s.setblocking(True)
    data = c.recv_some(3, 1 << 24)
    code = "none"
    for raw in data.split(b"\n"):
        try:
            m = json.loads(raw)
        except ValueError:
            continue
        if isinstance(m, dict) and m.get("type") == "error":
            code = m.get("code", "?")
            break
    print("code", code, flush=True)
