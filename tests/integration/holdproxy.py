#!/usr/bin/env python3
"""A TCP forwarder that stands for a NAT whose peer has vanished: 127.0.0.1:PORT forwards to
127.0.0.1:UPSTREAM, and when the client side closes (a listen killed with SIGKILL) the upstream
side is kept open and silent, as a server sees a peer behind a NAT until its keepalive.
Usage: holdproxy.py PORT UPSTREAM. Runs until killed (the test runs it under timeout)."""
import selectors
import socket
import sys


def main():
    port, upstream = int(sys.argv[1]), int(sys.argv[2])
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(8)
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ, None)
    held = []  # upstream sockets whose client is gone: open, never read again
    while True:
        for key, _ in sel.select():
            if key.data is None:
                c, _ = ls.accept()
                u = socket.create_connection(("127.0.0.1", upstream))
                sel.register(c, selectors.EVENT_READ, (c, u, True))
                sel.register(u, selectors.EVENT_READ, (u, c, False))
                continue
            src, dst, client_side = key.data
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if data:
                try:
                    dst.sendall(data)
                except OSError:
                    pass
                continue
            # one side closed: the client's end → hold the upstream; the server's → close both
            sel.unregister(src)
            src.close()
            try:
                sel.unregister(dst)
            except (KeyError, ValueError):
                pass
            if client_side:
                held.append(dst)
            else:
                dst.close()


if __name__ == "__main__":
    main()
