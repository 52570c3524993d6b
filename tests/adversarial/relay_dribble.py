"""The relay dribble (red-team item 1): two ids of the attacker join a relay session; side B
never reads (tiny receive buffer), side A sends a bulk until the server starts queueing towards
B, then 1-byte segments. Each short read used to hold a whole 128 KiB read buffer as its write
request: ~4 KiB of RSS (128 KiB of address space) per queued byte. Then B reads again and must
get every byte A managed to send, in order.

usage: relay_dribble.py PORT SERVER_PID DRIBBLE_COUNT
Prints "key value" lines: rss_before, rss_after (KiB), bulk, dribble (bytes sent), got, intact,
back (whether A got B's reply)."""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from advpeer import Identity, RelayConn, ServerConn, is_challenge  # noqa: E402

port, pid, count = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
addr = ("127.0.0.1", port)


def status(key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


class SlowRelay(RelayConn):
    """A relay connection with a 4 KiB receive buffer, set before connecting."""

    def __init__(self, session, token):
        self.buf = b""
        self.s = socket.socket()
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.s.settimeout(5)
        self.s.connect(addr)
        ch = self.line(5)
        if not is_challenge(ch):
            raise RuntimeError(f"no challenge: {ch!r}")
        self.msg({"type": "relay", "version": 1, "session": session, "token": token})
        self.joined = None


tag = f"{os.getpid()}"
a = ServerConn(addr)
b = ServerConn(addr)
wa = a.register(f"dra{tag}", Identity(f"dra{tag}"), path="relay")
wb = b.register(f"drb{tag}", Identity(f"drb{tag}"), path="relay")
if not wa or wa.get("type") != "welcome" or not wb or wb.get("type") != "welcome":
    sys.exit(f"registration failed: {wa!r} {wb!r}")
pa = a.connect_to(f"drb{tag}")
pb = b.next_msg()
if not pa or pa.get("type") != "punch" or not pb or pb.get("type") != "punch":
    sys.exit(f"no punch: {pa!r} {pb!r}")
ra = RelayConn(addr, pa["session"], pa["token"])
rb = SlowRelay(pb["session"], pb["token"])
ja, jb = ra.wait(), rb.wait()
if not ja or ja.get("type") != "relayed" or not jb or jb.get("type") != "relayed":
    sys.exit(f"relay not joined: {ja!r} {jb!r}")
ra.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
ra.s.setblocking(False)

# bulk until the server's socket towards B is full (its send queue stops growing): from then
# on the server queues in its own memory; a little more so that it does, no more than that
bport = rb.s.getsockname()[1]


def txq():
    """The server's send queue towards B, from /proc/net/tcp (tx_queue of its socket)."""
    want = (f"0100007F:{port:04X}", f"0100007F:{bport:04X}")
    with open("/proc/net/tcp") as f:
        for line in f:
            w = line.split()
            if len(w) > 4 and (w[1], w[2]) == want:
                return int(w[4].split(":")[0], 16)
    return -1


bulk = 0
last, same = -1, 0
end = time.time() + 10
while bulk < 8 << 20 and time.time() < end and same < 20:
    try:
        bulk += ra.s.send(b"y" * 1000)
    except BlockingIOError:
        pass
    time.sleep(0.0003)
    q = txq()
    same = same + 1 if q == last and q > 0 else 0
    last = q
time.sleep(0.5)

rss_before = status("VmRSS")
dribble = 0
end = time.time() + 8
for i in range(count):
    if time.time() > end:
        break
    try:
        dribble += ra.s.send(b"x")
    except BlockingIOError:
        pass
    time.sleep(0.00005)
time.sleep(1)
rss_after = status("VmRSS")
print("rss_before", rss_before)
print("rss_after", rss_after)
print("bulk", bulk)
print("dribble", dribble, flush=True)

# B reads again: everything A sent arrives, in order
want = bulk + dribble
got = bytearray(rb.buf)
rb.buf = b""
rb.s.setblocking(True)
end = time.time() + 30
while len(got) < want and time.time() < end:
    rb.s.settimeout(max(0.05, end - time.time()))
    try:
        d = rb.s.recv(1 << 20)
    except (socket.timeout, OSError):
        break
    if not d:
        break
    got += d
print("got", len(got))
print("intact", int(bytes(got) == b"y" * bulk + b"x" * dribble))
rb.s.sendall(b"back")
ra.s.setblocking(True)
ra.buf = b""
back = ra.recv_some(5, 4)
print("back", int(back == b"back"))
