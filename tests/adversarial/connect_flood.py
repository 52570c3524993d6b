"""The refusal log flood (final red team, server item 3): one registered peer sends `connect`
requests as fast as it can. Each one beyond --connect-rate is refused without closing the
connection, and every refusal used to be a log line: ~50,000 lines (7.8 MB) a second from one
connection. Now a connection's non-fatal refusals are logged a few at a time (then counted), and
a peer that sends more than 10 x --connect-rate refused requests in a second is dropped.

usage: connect_flood.py PORT N DIR
Registers, writes DIR/started, sends N connect lines within at most 3 s, then prints
"sent S" and "code CODE" (the last error code received: rate-limited, or none) and
"closed yes|no" (whether the server closed the connection within 5 s)."""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from advpeer import Identity, ServerConn, error_codes  # noqa: E402

port, n, d = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
me = f"cf{os.getpid()}"
c = ServerConn(("127.0.0.1", port))
w = c.register(me, Identity(me))
if not w or w.get("type") != "welcome":
    sys.exit(f"registration failed: {w!r}")
open(os.path.join(d, "started"), "w").close()

line = b'{"type":"connect","target":"nobody-here"}\n'
data = line * n
c.s.setblocking(False)
off, end, got = 0, time.time() + 3, b""
while off < len(data) and time.time() < end:
    try:
        off += c.s.send(data[off:off + 65536])
    except BlockingIOError:
        time.sleep(0.002)
    except OSError:
        break  # the server closed the connection
    try:
        chunk = c.s.recv(1 << 20)
        if not chunk:
            break
        got += chunk[-4096:]
    except (BlockingIOError, OSError):
        pass
print("sent", off // len(line), flush=True)
closed = "no"
c.s.setblocking(True)
c.s.settimeout(0.5)
end = time.time() + 5
while time.time() < end:
    try:
        chunk = c.s.recv(1 << 20)
    except socket.timeout:
        continue
    except OSError:
        closed = "yes"
        break
    if not chunk:
        closed = "yes"
        break
    got = (got + chunk)[-8192:]
codes = error_codes(got)
print("code", codes[-1] if codes else "none")
print("closed", closed, flush=True)
