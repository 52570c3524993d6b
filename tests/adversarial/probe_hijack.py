"""The probe hijack (red-team item 8): a probe with a registered peer's probe_token (it travels
in clear in welcome: anyone on the path has it) used to overwrite that peer's recorded NAT
mapping from any address. The victim probes from its control connection's own port (mapping
"independent"); the attacker then probes with the victim's token from 127.0.0.2; a third peer
connects to the victim and reads what its punch says about the victim's NAT.

usage: probe_hijack.py PORT PROBE_PORT
Prints: victim (the victim's own probe's mapping), attacker (the mapping answered to the
attacker, "none" when absent), nat (punch.nat the third peer got)."""
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from advpeer import Identity, ServerConn, is_challenge  # noqa: E402

port, pport = int(sys.argv[1]), int(sys.argv[2])
addr, paddr = ("127.0.0.1", port), ("127.0.0.1", pport)


def reusable(source):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.settimeout(5)
    s.bind(source)
    return s


class Ctl(ServerConn):
    """A control connection from a reusable port (the probe comes from the same port)."""

    def __init__(self):
        self.buf = b""
        self.s = reusable(("127.0.0.1", 0))
        self.s.connect(addr)
        self.challenge = self.line(5)
        if not is_challenge(self.challenge):
            raise RuntimeError(f"no challenge: {self.challenge!r}")
        self.nonce = self.challenge["nonce"]


def probe(source, token):
    c = ServerConn.__new__(ServerConn)
    c.buf = b""
    c.s = reusable(source)
    c.s.connect(paddr)
    ch = c.line(5)
    if not is_challenge(ch):
        raise RuntimeError(f"no challenge on the probe port: {ch!r}")
    c.msg({"type": "probe", "version": 1, "token": token})
    r = c.line(5)
    c.close()
    if not r or r.get("type") != "observed":
        raise RuntimeError(f"no observed: {r!r}")
    return r.get("mapping", "none")


tag = os.getpid()
victim = Ctl()
w = victim.register(f"vic{tag}", Identity(f"vic{tag}"))
if not w or w.get("type") != "welcome" or "probe_token" not in w:
    sys.exit(f"victim not registered with a probe token: {w!r}")
print("victim", probe(victim.s.getsockname(), w["probe_token"]))
print("attacker", probe(("127.0.0.2", 0), w["probe_token"]), flush=True)

other = ServerConn(addr)
wo = other.register(f"oth{tag}", Identity(f"oth{tag}"))
if not wo or wo.get("type") != "welcome":
    sys.exit(f"other not registered: {wo!r}")
p = other.connect_to(f"vic{tag}")
if not p or p.get("type") != "punch":
    sys.exit(f"no punch: {p!r}")
print("nat", p.get("nat", "none"))
