"""Forged traversal reports (PROTOCOL.md, "Traversal reports"): registered peers that report on
sessions that are not theirs, twice on their own, on made-up ones, and in a flood.

usage: report_forged.py PORT VICTIM_SESSION PREFIX N
  - PREFIX-x, a registered stranger, reports on VICTIM_SESSION (read from the victims' log);
  - PREFIX-a connects to PREFIX-b; both get the punch; PREFIX-a reports on it twice, PREFIX-b
    once, PREFIX-a once on a random session;
  - PREFIX-a sends N reports at once (its own session and random ones) while PREFIX-p pings
    the server every 50 ms.
Prints "session S" (a and b's), "answered N" (lines the server sent back to a report: none
expected), "ping_max_ms X", "ping_lost N", "alive_x yes|no", "alive_a yes|no". Every wait is
bounded."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from advpeer import Identity, ServerConn  # noqa: E402

port, victim, prefix, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
addr = ("127.0.0.1", port)


def peer(name):
    c = ServerConn(addr)
    w = c.register(name, Identity(name))
    if not w or w.get("type") != "welcome":
        sys.exit(f"{name}: registration failed: {w!r}")
    return c


def report(session, result="direct", cand="public"):
    return {"type": "report", "session": session, "result": result, "candidate": cand,
            "attempts": 1, "ms": 5, "nat": "independent"}


def alive(c):
    """A ping answered with its pong within 3 s (what a report answered with a line would
    come before)."""
    c.msg({"type": "ping", "seq": 77})
    m = c.next_msg(3.0)
    return m is not None and m.get("type") == "pong" and m.get("seq") == 77


x = peer(prefix + "-x")
a = peer(prefix + "-a")
b = peer(prefix + "-b")
p = peer(prefix + "-p")

# the stranger on the victims' session: not counted, and answered with nothing
x.msg(report(victim))
answered = 0
if x.line(0.5) is not None:
    answered += 1

punch = a.connect_to(prefix + "-b")
if not punch or punch.get("type") != "punch":
    sys.exit(f"no punch for {prefix}-a: {punch!r}")
pb = b.next_msg(5.0)
if not pb or pb.get("type") != "punch":
    sys.exit(f"no punch for {prefix}-b: {pb!r}")
sess = punch["session"]
print("session", sess, flush=True)
b.msg(report(sess, "relay", "relay"))
a.msg(report(sess))
time.sleep(0.2)
a.msg(report(sess, "failed", "none"))  # again: not counted
a.msg(report(os.urandom(16).hex()))    # made up
if a.line(0.5) is not None:
    answered += 1

# the flood, with another peer's pings timed meanwhile
rtts, lost = [], [0]
stop = threading.Event()


def pinger():
    seq = 1000
    while not stop.is_set() and seq < 1400:
        seq += 1
        t0 = time.time()
        p.msg({"type": "ping", "seq": seq})
        m = p.line(3.0)
        if m is None or m.get("type") != "pong":
            lost[0] += 1
        else:
            rtts.append((time.time() - t0) * 1000)
        time.sleep(0.05)


th = threading.Thread(target=pinger, daemon=True)
th.start()
lines = []
for i in range(n):
    s = sess if i % 2 else os.urandom(16).hex()
    lines.append(('{"type":"report","session":"%s","result":"direct","candidate":"lan",'
                  '"attempts":%d,"ms":%d,"nat":"unknown"}\n') % (s, i % 100, i % 1000))
data = "".join(lines).encode()
a.s.settimeout(10)
a.s.sendall(data)
time.sleep(1.0)
stop.set()
th.join(5)
print("ping_max_ms", int(max(rtts)) if rtts else -1)
print("ping_count", len(rtts))
print("ping_lost", lost[0])
print("answered", answered)
print("alive_x", "yes" if alive(x) else "no")
print("alive_a", "yes" if alive(a) else "no", flush=True)
