#!/usr/bin/env python3
"""A tiny stand-in for systemd's socket activation, for test_socket_activation.sh.

sdlaunch.py serve PORT PIDFILE GAPFILE -- SERVER ARGS...
    binds 127.0.0.1:PORT and listens, then runs SERVER with that socket as fd 3 and
    LISTEN_FDS=1, LISTEN_PID=<its pid>, LISTEN_FDNAMES=main (its pid in PIDFILE). On SIGUSR1 it
    restarts it the way `systemctl restart` does with a .socket unit: SIGTERM, wait, then (after
    writing GAPFILE and a pause in which connections queue in the backlog it keeps) a new one on
    the same socket. Exits when the server exits other than by a restart.
sdlaunch.py bad KIND -- SERVER ARGS...
    runs SERVER with fd 3 a socket that is no listening TCP socket (KIND: udp or unbound), or
    (probeonly) a listening one named "probe" alone, and the variables set; its exit status is
    the server's.
sdlaunch.py otherpid -- SERVER ARGS...
    sets LISTEN_PID to another process's pid: the server must ignore the variables.
"""
import os
import signal
import socket
import sys
import time


def run(sock, argv, names="main", pid_of=None):
    pid = os.fork()
    if pid == 0:
        os.dup2(sock.fileno(), 3)
        os.set_inheritable(3, True)
        os.environ["LISTEN_FDS"] = "1"
        os.environ["LISTEN_PID"] = str(pid_of if pid_of else os.getpid())
        os.environ["LISTEN_FDNAMES"] = names
        os.execv(argv[0], argv)
    return pid


def main():
    mode = sys.argv[1]
    argv = sys.argv[sys.argv.index("--") + 1:]
    if mode == "serve":
        port, pidfile, gapfile = int(sys.argv[2]), sys.argv[3], sys.argv[4]
        restart_pending = []

        def usr1(*_):  # the restart: SIGTERM to the current server (its pid in pidfile)
            restart_pending.append(1)
            with open(pidfile) as f:
                os.kill(int(f.read()), signal.SIGTERM)

        signal.signal(signal.SIGUSR1, usr1)
        sys.exit(serve_loop(port, pidfile, gapfile, argv, restart_pending))
    if mode == "bad":
        names = "main"
        if sys.argv[2] == "udp":
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        elif sys.argv[2] == "probeonly":  # a good socket, but named probe: no main listener
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            s.listen(8)
            names = "probe"
        else:
            s = socket.socket()
        pid = run(s, argv, names)
        _, status = os.waitpid(pid, 0)
        sys.exit(os.waitstatus_to_exitcode(status))
    if mode == "otherpid":  # exec'd in place: the server is this process, LISTEN_PID is not
        s = socket.socket()
        os.dup2(s.fileno(), 3)
        os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getppid()), LISTEN_FDNAMES="main")
        os.execv(argv[0], argv)


def serve_loop(port, pidfile, gapfile, argv, restart):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(128)
    child = run(ls, argv)
    with open(pidfile, "w") as f:
        f.write("%d" % child)
    while True:
        try:
            _, status = os.waitpid(child, 0)
        except InterruptedError:
            continue
        if not restart:
            return os.waitstatus_to_exitcode(status)
        restart.clear()
        with open(gapfile, "a") as f:
            f.write("gap\n")
        time.sleep(1.5)  # connections queue in the kept socket meanwhile
        child = run(ls, argv)
        with open(pidfile, "w") as f:
            f.write("%d" % child)


if __name__ == "__main__":
    main()
