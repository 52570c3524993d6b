#!/usr/bin/env python3
"""Makers that leave while their channel's number is being reserved in Redis (test_wh_reserve_gone.sh):
each registers on the instance, sends code-open and closes at once, so that the server reads
the close before Redis answers the SET NX. Their channels end at once; no number of theirs may
stay in the instance's memory of its numbers, which it sets again in Redis when Redis comes back
empty.

usage: wh_reserve_gone.py PORT COUNT
Prints ok/FAIL lines; exit status = number of failures. Every wait is bounded."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from advpeer import Identity, ServerConn  # noqa: E402
import tpauth  # noqa: E402

port, count = int(sys.argv[1]), int(sys.argv[2])
R = tpauth.Report("wh_reserve_gone")
uid = tpauth.id_maker(os.getpid())
sent = 0
for i in range(count):
    c = ServerConn(("127.0.0.1", port))
    ident = uid(f"m{i}")
    w = c.register(ident, Identity(ident))
    if not w or w.get("type") != "welcome":
        R.bad(f"maker {i} not registered: {w!r}")
        continue
    c.msg({"type": "code-open"})
    c.s.close()  # the close right behind the open: read before Redis answers
    sent += 1
R.check(sent == count, f"{sent} makers opened a code and left at once")
sys.exit(R.status())
