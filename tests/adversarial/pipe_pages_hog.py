#!/usr/bin/env python3
"""Spends the calling user's pipe pages (/proc/sys/fs/pipe-user-pages-soft): opens pipes grown
to 256 KiB until a new pipe comes out smaller than the kernel's 64 KiB default (the state a
relay with many sessions, or any other process of its user, leaves behind), prints "spent N"
and holds them for SECONDS. Bounded: at most 1024 pipes.
Usage: pipe_pages_hog.py SECONDS"""
import fcntl
import os
import sys
import time

F_SETPIPE_SZ, F_GETPIPE_SZ = 1031, 1032
held = []
for _ in range(1024):
    r, w = os.pipe()
    held.append((r, w))
    if fcntl.fcntl(w, F_GETPIPE_SZ) < 65536:
        print(f"spent {len(held)}", flush=True)
        break
    try:
        fcntl.fcntl(w, F_SETPIPE_SZ, 256 * 1024)
    except OSError:
        pass
else:
    print("not spent", flush=True)
time.sleep(float(sys.argv[1]))
