"""Hostile clients against the metrics port (--metrics-listen), each followed by a check that
the main port still registers a fresh peer within a second.

usage: metrics_hostile.py MAIN_PORT METRICS_PORT SERVER_PID
Prints one "ok WHAT" or "FAIL WHAT" line per check, and "rss_before"/"rss_peak" (KiB)."""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from advpeer import Identity, ServerConn  # noqa: E402
from tpauth import rss_kib  # noqa: E402

main_port, mx_port, pid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
MX = ("127.0.0.1", mx_port)
fails = 0


def report(ok, what):
    global fails
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        fails += 1


def main_port_serves(what):
    """A fresh id registers on the main port and gets its welcome within a second."""
    t0 = time.time()
    try:
        c = ServerConn(("127.0.0.1", main_port), timeout=2.0)
        me = f"mh{os.getpid()}x{int(t0 * 1000) % 100000}"
        w = c.register(me, Identity(me))
        dt = time.time() - t0
        c.s.close()
        report(w.get("type") == "welcome" and dt < 1.0,
               f"{what}: the main port registered a peer in {dt * 1000:.0f} ms")
    except Exception as e:  # noqa: BLE001
        report(False, f"{what}: the main port did not register a peer: {e!r}")


def read_all(s, limit, deadline):
    """What s gives until EOF, a reset or the deadline; (bytes, closed)."""
    data = b""
    while time.time() < deadline and len(data) < limit:
        s.settimeout(max(0.01, deadline - time.time()))
        try:
            b = s.recv(65536)
        except socket.timeout:
            return data, False
        except OSError:
            return data, True
        if not b:
            return data, True
        data += b
    return data, False


def request(raw, wait=3.0):
    s = socket.create_connection(MX, timeout=2)
    try:
        s.sendall(raw)
    except OSError:
        pass
    data, closed = read_all(s, 1 << 20, time.time() + wait)
    s.close()
    return data, closed


def status(data):
    parts = data.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[0].startswith(b"HTTP/1.") else None


rss_before = rss_kib(pid)
peak = rss_before

# 1. a huge request head: 431 at the limit, then closed; the rest is never buffered
head = b"GET /metrics HTTP/1.1\r\nX-Junk: " + b"a" * (64 * 1024)
data, closed = request(head)
report(status(data) == 431 and closed, f"huge head: {status(data)}, closed {closed}")
huge_lines = b"GET /metrics HTTP/1.1\r\n" + b"X-A: b\r\n" * 2000 + b"\r\n"
data, closed = request(huge_lines)
report(status(data) == 431, f"16 KiB of headers: {status(data)}")
main_port_serves("after the huge heads")

# 2. slowloris: one byte every 0.5 s of a head that never ends; closed by the head timeout (5 s)
s = socket.create_connection(MX, timeout=2)
t0 = time.time()
closed_at = None
trickle = b"GET /metrics HTTP/1.1\r\nX-Slow: " + b"z" * 40
for i in range(len(trickle)):  # bounded: at most 36 s, closed long before
    try:
        s.sendall(trickle[i:i + 1])
    except OSError:
        closed_at = time.time() - t0
        break
    s.settimeout(0.5)
    try:
        b = s.recv(4096)
        if not b:
            closed_at = time.time() - t0
            break
    except socket.timeout:
        pass
    except OSError:
        closed_at = time.time() - t0
        break
s.close()
report(closed_at is not None and closed_at < 7.5,
       f"slowloris closed after {closed_at if closed_at is None else round(closed_at, 1)} s "
       "(head timeout 5 s)")
main_port_serves("after the slowloris")

# 3. other paths and methods, garbage
for path in (b"/", b"/metrics/", b"/admin", b"/../metrics", b"/healthz/x", b"/metricsx"):
    data, _ = request(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    report(status(data) == 404, f"GET {path.decode()}: {status(data)}")
for method in (b"POST", b"PUT", b"DELETE", b"OPTIONS"):
    data, _ = request(method + b" /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
    report(status(data) == 405, f"{method.decode()} /metrics: {status(data)}")
data, _ = request(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + os.urandom(64))
report(status(data) == 400, f"a TLS ClientHello: {status(data)}")
data, _ = request(b"GET /metrics HTTP/1.1\r\n\r\n")
report(status(data) == 200 and b"tcpunch_registrations_total" in data,
       f"a plain GET still works: {status(data)}")
# a client that half-closes after its request, with a tiny receive buffer: the whole answer
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
s.settimeout(3)
s.connect(MX)
s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
s.shutdown(socket.SHUT_WR)
time.sleep(0.3)
data, closed = read_all(s, 1 << 20, time.time() + 3)
s.close()
hdr, _, body = data.partition(b"\r\n\r\n")
clen = [ln.split(b":")[1].strip() for ln in hdr.split(b"\r\n")
        if ln.lower().startswith(b"content-length:")]
report(status(data) == 200 and clen and int(clen[0]) == len(body) and closed,
       f"half-closed client: {status(data)}, {len(body)} of {clen[0].decode() if clen else '?'} "
       "bytes, then closed")
main_port_serves("after the other paths")

# 4. 200 connections at once, sending nothing: beyond the 16 allowed, closed at once
conns = []
for i in range(200):
    try:
        conns.append(socket.create_connection(MX, timeout=2))
    except OSError:
        pass
time.sleep(0.5)
closed_now = 0
for c in conns:
    c.setblocking(False)
    try:
        b = c.recv(1)
        if not b:
            closed_now += 1
    except BlockingIOError:
        pass
    except OSError:
        closed_now += 1
peak = max(peak, rss_kib(pid))
report(len(conns) == 200, f"200 connections opened ({len(conns)})")
report(closed_now >= 200 - 16, f"{closed_now} of them closed at once (at most 16 held)")
main_port_serves("with 200 metrics connections open")
for c in conns:
    c.close()
time.sleep(0.3)
data, _ = request(b"GET /healthz HTTP/1.1\r\n\r\n")
report(status(data) == 200, f"/healthz once they are gone: {status(data)}")

# 5. a scrape loop: 300 scrapes back to back, the main port still answers, memory flat
t0 = time.time()
n_ok = 0
for i in range(300):
    data, _ = request(b"GET /metrics HTTP/1.0\r\n\r\n")
    n_ok += status(data) == 200
    if i % 50 == 0:
        peak = max(peak, rss_kib(pid))
report(n_ok == 300, f"300 scrapes in {time.time() - t0:.1f} s: {n_ok} answered 200")
main_port_serves("after 300 scrapes")
peak = max(peak, rss_kib(pid))

print("rss_before", rss_before)
print("rss_peak", peak, flush=True)
sys.exit(1 if fails else 0)
