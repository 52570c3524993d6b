#!/usr/bin/env python3
"""Birthday plans across cluster instances (PROTOCOL.md sections 16 and 17): the hard peers on
instance A, the easy ones on instance B (made to look so on loopback as in birthday_plan.py).

  ab        hard (A) -> easy (B): the initiator's caps travel in introduce; both copies planned
  ab-again  the same connect again at once: no plan (B marked easy, A marked hard)
  ba        easyb (B) -> hardb (A): the initiator easy across, the target hard: planned
  ab-recent hard (A) -> easyc (B, fresh) within 10 s: A marked hard when it forwarded the
            planned answer and sends no caps for it now: no plan

usage: birthday_cluster.py PORT_A PROBE_A PORT_B PROBE_B  (A with --birthday-k-max 128)
Prints "name value" lines."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from birthday_plan import desc, peer, say  # noqa: E402


def punch_pair(a, b):
    """a connects to b (on another instance): (a's punch, b's punch)."""
    pa = a.connect_to(b.pid, 5)
    pb = b.next_msg(5)
    return pa, pb


def main():
    a = (int(sys.argv[1]), int(sys.argv[2]))
    b = (int(sys.argv[3]), int(sys.argv[4]))
    hard = peer("chard", "127.0.0.1", True, {"k": 200, "m": 1000}, a)
    hard2 = peer("chardb", "127.0.0.1", True, {"k": 100, "m": 100}, a)
    hard3 = peer("chardc", "127.0.0.1", True, {"k": 100, "m": 100}, a)
    easy = peer("ceasy", "127.0.0.2", False, {"k": 300, "m": 900}, b)
    easy2 = peer("ceasyb", "127.0.0.3", False, {"k": 300, "m": 500}, b)
    easy3 = peer("ceasyc", "127.0.0.4", False, {"k": 300, "m": 500}, b)
    pa, pb = punch_pair(hard, easy)
    say("ab-hard", desc(pa, easy.observed))
    say("ab-easy", desc(pb, hard.observed))
    pa, pb = punch_pair(hard, easy)
    say("ab-again", desc(pa, easy.observed) + "/" + desc(pb, hard.observed))
    pa, pb = punch_pair(easy2, hard2)
    say("ba-easy", desc(pa, hard2.observed))
    say("ba-hard", desc(pb, easy2.observed))
    pa, pb = punch_pair(hard, easy3)
    say("ab-recent", desc(pa, easy3.observed) + "/" + desc(pb, hard.observed))
    pa, pb = punch_pair(hard3, easy3)  # control: easyc itself may take part
    say("ab-control", desc(pa, easy3.observed))


main()
