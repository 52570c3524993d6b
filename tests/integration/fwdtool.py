#!/usr/bin/env python3
"""Helpers for test_forward.sh.

  fwdtool.py echo PORT COUNTFILE   echo server on 127.0.0.1:PORT; every accepted connection adds
                                   a line to COUNTFILE. The echo half-closes after the client's
                                   end, like a well-behaved service.
  fwdtool.py clients PORT N BYTES  N concurrent clients of 127.0.0.1:PORT, each sends BYTES
                                   random bytes, half-closes and expects them back intact.
                                   Exit 0 when all N got their bytes back, 1 otherwise.
  fwdtool.py lines PORT N MS OUT  a client of 127.0.0.1:PORT sending the lines 1..N, one every
                                   MS ms, then half-closing; what comes back goes to OUT. Exit 0
                                   when exactly those N lines came back, in order.
Every socket has a timeout: nothing here can hang a test.
"""
import hashlib
import os
import socket
import sys
import threading
import time

TIMEOUT = 60


def echo_conn(c):
    c.settimeout(TIMEOUT)
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            c.sendall(d)
        c.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    finally:
        c.close()


def echo(port, countfile):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(64)
    while True:
        c, _ = s.accept()
        with open(countfile, "a") as f:
            f.write("conn\n")
        threading.Thread(target=echo_conn, args=(c,), daemon=True).start()


def client(port, nbytes, results, i):
    data = os.urandom(nbytes)
    got = bytearray()
    try:
        c = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)

        def sender():
            try:
                c.sendall(data)
                c.shutdown(socket.SHUT_WR)
            except OSError:
                pass

        t = threading.Thread(target=sender, daemon=True)
        t.start()
        while True:
            d = c.recv(65536)
            if not d:
                break
            got += d
        t.join(TIMEOUT)
        c.close()
    except OSError as e:
        results[i] = "client %d: %s" % (i, e)
        return
    if bytes(got) != data:
        results[i] = "client %d: sent %d bytes sha256 %s, got back %d bytes sha256 %s" % (
            i, len(data), hashlib.sha256(data).hexdigest()[:16], len(got),
            hashlib.sha256(got).hexdigest()[:16])
    else:
        results[i] = None


def clients(port, n, nbytes):
    results = ["client %d: did not finish" % i for i in range(n)]
    ts = [threading.Thread(target=client, args=(port, nbytes, results, i)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(TIMEOUT + 10)
    bad = [r for r in results if r]
    for r in bad:
        print(r, file=sys.stderr)
    return 1 if bad else 0


def lines(port, n, ms, out):
    want = "".join("%d\n" % i for i in range(1, n + 1)).encode()
    got = bytearray()
    c = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)

    def sender():
        try:
            for i in range(1, n + 1):
                c.sendall(b"%d\n" % i)
                time.sleep(ms / 1000.0)
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            got += d
    except OSError as e:
        print("lines: %s after %d bytes" % (e, len(got)), file=sys.stderr)
    c.close()
    with open(out, "wb") as f:
        f.write(got)
    return 0 if bytes(got) == want else 1


if __name__ == "__main__":
    if sys.argv[1] == "echo":
        echo(int(sys.argv[2]), sys.argv[3])
    elif sys.argv[1] == "lines":
        sys.exit(lines(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]))
    elif sys.argv[1] == "clients":
        sys.exit(clients(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
    else:
        sys.exit(__doc__)
