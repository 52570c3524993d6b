#!/usr/bin/env python3
"""A recording TCP proxy for the relay capture test: accepts connections on 127.0.0.1:LISTEN,
connects each to 127.0.0.1:TARGET and copies both ways unchanged, writing what each connection
carried to OUT_DIR/conn-N.up (towards TARGET) and OUT_DIR/conn-N.down (from TARGET).
Peers given the proxy as their --server send everything for the server through it: control
connections, probes and relay connections alike.
Usage: recorder.py LISTEN TARGET OUT_DIR STOP_FILE [LIFETIME]
Ends when STOP_FILE exists and every connection has finished, after 64 connections, or after
LIFETIME s (default 60), whichever comes first. Every wait is bounded."""
import os
import socket
import sys
import threading
import time

LISTEN, TARGET, OUT, STOP = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
LIFETIME = float(sys.argv[5]) if len(sys.argv) > 5 else 60.0
MAX_CONNS = 64
os.makedirs(OUT, exist_ok=True)
T_END = time.time() + LIFETIME


def pipe(src, dst, path):
    with open(path, "wb") as log:
        try:
            while True:
                src.settimeout(max(0.1, T_END - time.time()))
                data = src.recv(65536)
                if not data:
                    break
                log.write(data)
                log.flush()
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            # a reset on one side is passed on as a reset on the other
            for s in (src, dst):
                try:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
                    s.close()
                except OSError:
                    pass


def main():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", LISTEN))
    srv.listen(16)
    srv.settimeout(0.2)
    threads = []
    n = 0
    while time.time() < T_END and n < MAX_CONNS:
        if os.path.exists(STOP) and not any(t.is_alive() for t in threads):
            break
        try:
            a, _ = srv.accept()
        except socket.timeout:
            continue
        try:
            b = socket.create_connection(("127.0.0.1", TARGET), timeout=5)
        except OSError:
            a.close()
            continue
        n += 1
        for src, dst, name in ((a, b, "up"), (b, a, "down")):
            t = threading.Thread(target=pipe, args=(src, dst, f"{OUT}/conn-{n}.{name}"),
                                 daemon=True)
            t.start()
            threads.append(t)
    srv.close()
    for t in threads:
        t.join(max(0.1, T_END - time.time()))


main()
