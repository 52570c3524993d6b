"""A hostile `tcpunch send` for the receive limits tests (test_receive_limits.sh): a stranger
with its own key that does the real handshake (advpeer) and then speaks the file protocol
(PROTOCOL.md section 14) with lies in it.

    python3 hostile_sender.py ADVDIR PORT TARGET ME SCENARIO [ARGS...]

Prints one JSON line with what it saw on stdout; the shell test judges it. Every wait is bounded.
"""
import hashlib
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, sys.argv[1])
from advpeer import Opener, Sealer, stranger_session  # noqa: E402


class Sender:
    def __init__(self, port, target, me):
        srv, self.c, tx, rx = stranger_session(port, target, me)
        self.st, self.op = Sealer(tx), Opener(rx)
        self.got = b""
        self.final = False  # the receiver's final record came
        self.closed = False  # and its FIN or a reset
        self.srv = srv
        self.c.send(self.st.header)

    def say(self, m):
        self.c.send(self.st.seal((json.dumps(m) + "\n").encode()))

    def pull(self, timeout):
        try:
            data = self.c.recv_some(timeout=timeout, limit=65536)
        except OSError:
            data = b""
            self.closed = True
        if data == b"" and not self.closed:
            # recv_some gives b"" for a timeout as for an EOF: ask the socket
            try:
                self.c.s.setblocking(False)
                peek = self.c.s.recv(1, 0x02)  # MSG_PEEK
                self.closed = peek == b""
            except BlockingIOError:
                pass
            except OSError:
                self.closed = True
            finally:
                self.c.s.setblocking(True)
        for plain, fin in self.op.feed(data):
            self.got += plain
            self.final = self.final or fin

    def answer(self, secs=5.0):
        """The receiver's next line, or None when its stream ended (final record / close)."""
        end = time.time() + secs
        while b"\n" not in self.got and not self.final and not self.closed and time.time() < end:
            self.pull(0.1)
        if b"\n" not in self.got:
            return None
        line, self.got = self.got.split(b"\n", 1)
        return json.loads(line)

    def send_file(self, name, data):
        """Header, then (if accepted) the bytes and their checksum; returns both answers."""
        self.say({"name": name, "size": len(data), "mode": 0o644})
        a = self.answer()
        if not (a and a.get("accept")):
            return a, None
        self.c.send(self.st.seal(data))
        self.say({"blake2b": hashlib.blake2b(data, digest_size=32).hexdigest()})
        return a, self.answer()

    def end(self):
        self.say({"end": True})
        e = self.answer()
        self.c.send(self.st.seal(b"", final=True))
        self.c.s.shutdown(1)
        return e

    def finish(self):
        """Our final record after the receiver ended early; then wait for its close."""
        try:
            self.c.send(self.st.seal(b"", final=True))
            self.c.s.shutdown(1)
        except OSError:
            pass
        end = time.time() + 5
        while not self.closed and time.time() < end:
            self.pull(0.1)


def ls_parts(pid, d):
    """Part files in d, seen from the mount namespace of process pid ("" = ours)."""
    cmd = ["find", d, "-name", "*.tcpunch-part-*"]
    if pid:
        cmd = ["nsenter", "-t", pid, "-m", "--"] + cmd
    return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.split()


def main():
    port, target, me, scenario = int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    args = sys.argv[6:]
    s = Sender(port, target, me)
    out = {}
    if scenario == "announce":
        # a hello announcing COUNT files of BYTES bytes, then one small file if it was taken
        count, nbytes = int(args[0]), int(args[1])
        s.say({"files": 1, "count": count, "bytes": nbytes})
        out["hello"] = s.answer()
        if out["hello"] and out["hello"].get("files") == 1:
            out["file"] = s.send_file("announced.txt", b"x")
            out["end"] = s.end()
        else:
            s.finish()
        out["final"] = s.final
    elif scenario == "beyond":
        # announces 1 file of 10 bytes, sends it, then a second one of 1 MiB
        s.say({"files": 1, "count": 1, "bytes": 10})
        out["hello"] = s.answer()
        out["first"] = s.send_file("first.txt", b"12345")
        s.say({"name": "second.bin", "size": 1 << 20, "mode": 0o644})
        out["second"] = s.answer()
        if out["second"] and out["second"].get("accept"):
            s.c.send(s.st.seal(b"y" * (1 << 20)))
            s.say({"blake2b": hashlib.blake2b(b"y" * (1 << 20), digest_size=32).hexdigest()})
            out["second_ok"] = s.answer()
            out["end"] = s.end()
        else:
            out["ended_by_receiver"] = s.answer() is None and s.final
            s.finish()
    elif scenario == "enospc":
        # DIR is a 1 MiB tmpfs in the receiver's mount namespace (pid): a file that fits when
        # announced; then the file system fills up under it; the part file must go at once
        pid, d = args[0], args[1]
        size = 512 * 1024
        s.say({"files": 1, "count": 1, "bytes": size})
        out["hello"] = s.answer()
        s.say({"name": "big.bin", "size": size, "mode": 0o644})
        out["accept"] = s.answer()
        if out["accept"] and out["accept"].get("accept"):
            s.c.send(s.st.seal(b"z" * (64 * 1024)))
            time.sleep(0.5)
            out["parts_before"] = len(ls_parts(pid, d))
            subprocess.run(["nsenter", "-t", pid, "-m", "--", "sh", "-c",
                            f"dd if=/dev/zero of={d}/filler bs=4k 2>/dev/null; true"],
                           timeout=20)
            s.c.send(s.st.seal(b"z" * (64 * 1024)))
            time.sleep(1)
            out["parts_after_error"] = len(ls_parts(pid, d))
            s.c.send(s.st.seal(b"z" * (size - 128 * 1024)))
            s.say({"blake2b": hashlib.blake2b(b"z" * size, digest_size=32).hexdigest()})
            out["verdict"] = s.answer()
            out["end"] = s.end()
    elif scenario == "trickle":
        # a 1 MiB file, then one byte every 15 s: the receiver must cut within ~60 s
        s.say({"files": 1, "count": 1, "bytes": 1 << 20})
        out["hello"] = s.answer()
        s.say({"name": "slow.bin", "size": 1 << 20, "mode": 0o644})
        out["accept"] = s.answer()
        t0 = time.time()
        limit = float(args[0])
        while time.time() - t0 < limit and not s.closed:
            try:
                s.c.send(s.st.seal(b"t"))
            except OSError:
                s.closed = True
                break
            end = time.time() + 15
            while time.time() < end and not s.closed:
                s.pull(0.5)
        out["cut"] = s.closed
        out["after_s"] = round(time.time() - t0, 1)
        out["parts"] = len(ls_parts("", args[1]))
    elif scenario == "deep":
        # NFILES empty files, each DEPTH components deep in a tree of its own (d0/x/x/.../f):
        # empty files in new directories, to fill the disk with directories alone
        nfiles, depth = int(args[0]), int(args[1])
        s.say({"files": 1, "count": nfiles, "bytes": 0})
        out["hello"] = s.answer()
        out["ok"] = 0
        out["refused"] = []
        for i in range(nfiles):
            name = "/".join(["d%d" % i] + ["x"] * (depth - 2) + ["f"])
            a, v = s.send_file(name, b"")
            if v and v.get("ok"):
                out["ok"] += 1
            else:
                out["refused"].append((v or a or {}).get("refused", "?"))
        out["end"] = s.end()
    print(json.dumps(out), flush=True)


main()
