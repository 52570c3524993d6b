#!/usr/bin/env bash
# systemd socket activation (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES) with sdlaunch.py in
# systemd's place: the server serves the inherited socket without --listen, a peer registers
# and connects through it, the variables are for this process only, and a restart on the same kept
# socket loses no connection attempt queued meanwhile. A socket that is no listening TCP
# socket is refused (exit 2); variables for another pid are ignored. Every wait is bounded.
source "$(dirname "$0")/lib.sh" "$@"

SERVER_LOG=$WORK/server.log
touch "$SERVER_LOG"
PORT=$(free_port) || die "no free port"
SERVER_PORT=$PORT
spawn 90 python3 "$TESTDIR/sdlaunch.py" serve "$PORT" "$WORK/server.pid" "$WORK/gap" -- \
    "$RENDEZVOUS" -v --max-per-ip 0 --rate-per-ip 0 --connect-rate 0 2>>"$SERVER_LOG"
LAUNCHER=$!
wait_until 5 listening "$PORT" || die "sdlaunch.py does not listen on $PORT"
wait_until 5 grep -q "socket activation, fd 3" "$SERVER_LOG" ||
    die "the server did not take the inherited socket"
pass "the server serves the socket passed as fd 3 (no --listen)"
# (that the variables are unset for children is tests/unit/test_restart.c's: /proc/PID/environ
# shows the environment the process started with, whatever it unset since)
check "it does not bind a port of its own" bash -c "! grep -q 'listening on 0.0.0.0' '$SERVER_LOG'"

printf 'through an activated socket\n' >"$WORK/msg"
ID=$(uid act)
mark=$(log_mark)
spawn 30 "$TCPUNCH" -s "127.0.0.1:$PORT" -i "$ID" listen </dev/null >"$WORK/l1.out" 2>"$WORK/l1.err"
PID=$!
wait_registered "$ID" "$mark"
timeout -k 2 30 "$TCPUNCH" -s "127.0.0.1:$PORT" -i "$(uid asker)" connect "$ID" <"$WORK/msg" \
    >"$WORK/a.out" 2>"$WORK/a.err"
check_rc "connect through the activated server" 0 $?
wait "$PID"
same_file "data" "$WORK/msg" "$WORK/l1.out"

# ---- a restart: SIGTERM, a 1.5 s gap, a new server on the same socket ----
kill -USR1 "$(under_timeout "$LAUNCHER")" # the launcher itself, not its `timeout`
wait_until 10 test -s "$WORK/gap" || die "the launcher did not restart the server"
# in the gap nobody accepts, but the socket is open: these queue in its backlog
IDS=()
PIDS=()
for i in 1 2 3; do
    id=$(uid queued$i)
    IDS+=("$id")
    spawn 30 "$TCPUNCH" -s "127.0.0.1:$PORT" -i "$id" listen </dev/null >"$WORK/q$i.out" \
        2>"$WORK/q$i.err"
    PIDS+=($!)
done
python3 - "$PORT" >"$WORK/raw.out" 2>&1 <<'EOF_PY' &
import socket, sys
socks = [socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10) for _ in range(5)]
got = 0
for s in socks:
    try:
        if b'"challenge"' in s.recv(4096):
            got += 1
    except OSError:
        pass
print("challenged", got)
EOF_PY
RAW=$!
BG_PIDS+=($RAW)
wait "$RAW"
check "5 raw connections made during the gap were all served by the new server" \
    grep -q "challenged 5" "$WORK/raw.out"
for i in 0 1 2; do
    wait_until 10 grep -q -F "register ${IDS[i]} from" "$SERVER_LOG" ||
        fail "listen ${IDS[i]}, started during the gap, never registered"
done
pass "the 3 listens started during the gap registered on the new server"
check "the restarted server took the same socket" \
    test "$(grep -c 'socket activation, fd 3' "$SERVER_LOG")" -eq 2
for i in 0 1 2; do
    check "listen ${IDS[i]} never had to reconnect" \
        bash -c "! grep -q 'reconnecting to' '$WORK/q$((i + 1)).err'"
    kill "${PIDS[i]}" 2>/dev/null
done
kill -TERM "$(cat "$WORK/server.pid")"
wait "$LAUNCHER"
check_rc "the activated server after SIGTERM" 0 $?

# ---- what is no listening TCP socket is refused ----
for kind in udp unbound; do
    timeout -k 2 10 python3 "$TESTDIR/sdlaunch.py" bad "$kind" -- "$RENDEZVOUS" \
        2>"$WORK/bad-$kind.err"
    check_rc "fd 3 a $kind socket" 2 $?
    check "fd 3 a $kind socket: a clear error" \
        grep -q "socket activation: fd 3 is not a listening stream socket" "$WORK/bad-$kind.err"
done

# ---- only a "probe" socket: no main listener, peers could never register ----
timeout -k 2 10 python3 "$TESTDIR/sdlaunch.py" bad probeonly -- "$RENDEZVOUS" \
    2>"$WORK/bad-probeonly.err"
check_rc "only a socket named probe" 2 $?
check "only a socket named probe: a clear error" \
    grep -q "socket activation: every socket passed is named \"probe\"" "$WORK/bad-probeonly.err"

# ---- LISTEN_PID of another process: the variables are not for us, --listen is bound ----
P2=$(free_port) || die "no free port"
spawn 20 python3 "$TESTDIR/sdlaunch.py" otherpid -- "$RENDEZVOUS" -l "127.0.0.1:$P2" \
    2>"$WORK/other.err"
OTHER=$!
if wait_until 5 listening "$P2"; then
    pass "LISTEN_PID of another process: ignored, --listen bound"
else
    fail "LISTEN_PID of another process: the server did not bind --listen"
fi
check "and it did not use fd 3" bash -c "! grep -q 'socket activation' '$WORK/other.err'"
kill -TERM "$(under_timeout "$OTHER")" 2>/dev/null
wait "$OTHER" 2>/dev/null

finish
