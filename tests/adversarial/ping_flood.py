"""The ping flood (red-team item 4): K auxiliary registrations of one attacker id with tiny
receive buffers send N pings each and never read. Every pong used to be its own queued request
(~240 bytes held for a 25-byte line, the queue bound counted only the line), and input was read
without limit: ~5 MB held per connection. Now pings are rate-limited per connection (fatal
`too-many-pings`), and a connection whose answers are not read is not read either.

usage: ping_flood.py PORT SERVER_PID K N DIR
Writes DIR/started once registered; floods; prints rss_before and rss_peak (KiB); waits (at
most 60 s) for DIR/done, then prints one "code CODE" line per connection: the first error code
it received (none: no error line arrived)."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from advpeer import Identity, ServerConn, error_codes  # noqa: E402
from tpauth import rss_kib  # noqa: E402  (advpeer put its directory on the path)

port, pid, k, n, d = (int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]),
                      sys.argv[5])
addr = ("127.0.0.1", port)


def flooder():
    # a tiny receive buffer, so that unread pongs back up into the server at once
    return ServerConn(addr, nodelay=False, rcvbuf=4096)


me = f"pf{os.getpid()}"
ident = Identity(me)
conns = []
for i in range(k):
    c = flooder()
    w = c.register(me, ident, aux=True)
    if not w or w.get("type") != "welcome":
        sys.exit(f"registration {i} failed: {w!r}")
    conns.append(c)
base = rss_kib(pid)
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
    peak = max(peak, rss_kib(pid))
time.sleep(1)
peak = max(peak, rss_kib(pid))
print("rss_before", base)
print("rss_peak", peak, flush=True)

end = time.time() + 60
while not os.path.exists(os.path.join(d, "done")) and time.time() < end:
    time.sleep(0.1)
for c in conns:
    c.s.setblocking(True)
    data = c.recv_some(3, 1 << 24)
    codes = error_codes(data)
    print("code", codes[0] if codes else "none", flush=True)
