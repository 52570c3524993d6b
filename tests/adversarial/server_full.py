"""server-full (final red team, server item 5): with --max-peers reached, a new connection gets
the `server-full` error and then lingers like every refused connection (the server reads and
drops its input until it closes). The server used to go on to send the challenge on the shut
down stream, fail (EPIPE) and close at once: input that had arrived unread turned the close into
a reset, which can cut the error line the client has not read yet.

usage: server_full.py PORT N
Holds one connection (the server's only peer slot), then opens N more; each sends a line at
once, waits, and reads. Prints per connection "got LINES" with the types/codes it received
before EOF or a reset, and "reset yes|no"."""
import json
import socket
import sys
import time

port, n = int(sys.argv[1]), int(sys.argv[2])
hold = socket.create_connection(("127.0.0.1", port), timeout=5)
hold.recv(4096)  # its challenge: the slot is taken
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b'{"type":"hello","id":"x"}\n' * 64)
    time.sleep(0.2)
    data, reset = b"", "no"
    end = time.time() + 5
    while time.time() < end:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            reset = "yes"
            break
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
    got = []
    for raw in data.split(b"\n"):
        if not raw:
            continue
        try:
            m = json.loads(raw)
            got.append(m.get("type", "?") + ("/" + m["code"] if "code" in m else ""))
        except ValueError:
            got.append("garbage")
    print("got", ",".join(got) or "nothing", "reset", reset, flush=True)
    s.close()
hold.close()
