#!/usr/bin/env python3
"""A man in the middle for the end-to-end encryption tests: accepts one connection on
127.0.0.1:LISTEN, connects it to 127.0.0.1:TARGET and copies both ways, recording what goes
towards TARGET in LOG. MODE pass copies faithfully; flip inverts one bit of the byte at stream
offset OFFSET (towards TARGET); cut ends the stream towards TARGET with a clean FIN at OFFSET.
Every wait is bounded (30 s)."""
import socket
import sys
import threading

listen_port, target_port, mode, offset, log_path = (int(sys.argv[1]), int(sys.argv[2]),
                                                    sys.argv[3], int(sys.argv[4]), sys.argv[5])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", listen_port))
srv.listen(1)
srv.settimeout(30)
a, _ = srv.accept()
b = socket.create_connection(("127.0.0.1", target_port), timeout=30)
a.settimeout(30)
b.settimeout(30)
log = open(log_path, "wb")


def forward(src, dst, record):
    seen = 0
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if record and mode != "pass" and seen <= offset < seen + len(data):
                i = offset - seen
                if mode == "flip":
                    data = data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]
                else:  # cut: what came before goes through, then a clean end
                    dst.sendall(data[:i])
                    log.write(data[:i])
                    dst.shutdown(socket.SHUT_WR)
                    src.close()
                    return
            if record:
                log.write(data)
            seen += len(data)
            dst.sendall(data)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


t = threading.Thread(target=forward, args=(b, a, False), daemon=True)
t.start()
forward(a, b, True)
t.join(30)
log.close()
