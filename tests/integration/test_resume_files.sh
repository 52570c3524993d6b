#!/bin/bash
# Files and chat over a resumable session (docs/design/resume.md 4.7, the session bridge):
# a send whose peer-to-peer connection is cut (ss -K) mid-transfer, then suspended for 20 s,
# resumes and completes with the same checksum; chat lines typed before and after a cut all
# arrive, and on a terminal the chat says `-- connection lost, resuming --` / `-- resumed --`;
# a send whose receiver is killed -9 ends with exit 11 (not resumed) at the sender
# within its --resume-timeout, and one whose sender is killed -9 ends the receiver with 11,
# its part file removed.
# The cut lands mid-transfer deterministically: the receiver is stopped (SIGSTOP) as soon as
# the transfer started, so the sender blocks with most of the file unsent; the connection is
# cut while it is stopped, then it goes on (SIGCONT).
source "$(dirname "$0")/lib.sh" "$@"

# ss -K needs root and a kernel with CONFIG_INET_DIAG_DESTROY: probe it on a pair of our own
ss_k_works() {
    python3 - <<'PY'
import socket, subprocess, sys
l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen()
c = socket.create_connection(l.getsockname()); s, _ = l.accept()
subprocess.run(['ss', '-K', '( sport = :%d )' % c.getsockname()[1]], capture_output=True)
s.settimeout(2)
try:
    sys.exit(1 if s.recv(1) is None else 1)
except ConnectionResetError:
    sys.exit(0)
except Exception:
    sys.exit(1)
PY
}
if ! ss_k_works; then
    echo "SKIPPED: ss -K cannot cut a loopback connection here (needs root and INET_DIAG_DESTROY)"
    exit 77
fi

start_server
SRV=127.0.0.1:$SERVER_PORT

# peer_port PID: the local port of PID's one established TCP connection that is not to the
# server (the peer-to-peer one)
peer_port() {
    ss -tnpH state established | grep "pid=$1," | awk -v s=":$SERVER_PORT" \
        '$3 !~ s"$" && $4 !~ s"$" {n = split($3, a, ":"); print a[n]; exit}'
}

# cut_link PID: resets PID's peer-to-peer connection (both ends see it fail)
cut_link() {
    local port
    port=$(peer_port "$1")
    [ -n "$port" ] || die "no peer-to-peer connection of pid $1 to cut"
    ss -K "( sport = :$port )" >/dev/null 2>&1
    pass "cut the peer-to-peer connection (local port $port of pid $1)"
}

# ---- 1. a send cut mid-transfer resumes and completes
B=$(uid rrecv)
A=$(uid rsend)
mkdir -p "$WORK/src" "$WORK/dst"
head -c $((48 * 1024 * 1024)) /dev/urandom >"$WORK/src/big.bin"
mark=$(log_mark)
spawn 90 "$TCPUNCH" -v -s "$SRV" -i "$B" --from "$A" --dir "$WORK/dst" receive \
    >"$WORK/r.out" 2>"$WORK/r.err"
PID_R=$!
wait_registered "$B" "$mark"
spawn 90 "$TCPUNCH" -v -s "$SRV" -i "$A" send "$B" "$WORK/src/big.bin" >"$WORK/s.out" \
    2>"$WORK/s.err"
PID_S=$!
REAL_R=$(under_timeout "$PID_R")
# stop the receiver as soon as its part file exists: the sender can run ahead only by what the
# session's ring and the sockets hold (a few MiB), far less than 48 MiB
for _ in $(seq 1 2000); do
    [ -n "$(find "$WORK/dst" -name '*.tcpunch-part-*' 2>/dev/null)" ] && break
    sleep 0.005
done
kill -STOP "$REAL_R"
part=$(find "$WORK/dst" -name '*.tcpunch-part-*')
[ -n "$part" ] || { kill -CONT "$REAL_R"; die "the transfer did not start"; }
sleep 0.5
got=$(stat -c %s "$part")
check "the receiver was stopped mid-transfer ($got of $((48 * 1024 * 1024)) bytes)" \
    test "$got" -lt $((48 * 1024 * 1024))
cut_link "$(under_timeout "$PID_S")"
# suspended for 20 s (the receiver cannot answer while stopped): the transfer must wait, not end
sleep 20
kill -CONT "$REAL_R"
wait "$PID_S"
check_rc "send cut mid-transfer: exit 0" 0 $?
wait "$PID_R"
check_rc "receive cut mid-transfer: exit 0" 0 $?
same_file "big.bin after the cut" "$WORK/src/big.bin" "$WORK/dst/big.bin"
check "the sender logged the resume" grep -q "resumed with" "$WORK/s.err"
check "the receiver logged the resume" grep -q "resumed with" "$WORK/r.err"
check "the sender logged the loss" grep -q "lost (.*); resuming for up to" "$WORK/s.err"
ms=$(sed -n 's/.*resumed with .* after \([0-9]*\) ms.*/\1/p' "$WORK/s.err" | head -n 1)
check "the session resumed after the 20 s suspension (${ms:-?} ms)" test "${ms:-0}" -ge 20000
check "no part file left" test -z "$(find "$WORK/dst" -name '*.tcpunch-part-*')"

# ---- 2. chat: lines before and after a cut arrive
C=$(uid rchat-c)
D=$(uid rchat-d)
mkfifo "$WORK/c.fifo" "$WORK/d.fifo"
exec 3<>"$WORK/c.fifo" 4<>"$WORK/d.fifo"
mark=$(log_mark)
spawn 60 "$TCPUNCH" -v -s "$SRV" -i "$D" chat <"$WORK/d.fifo" >"$WORK/d.out" 2>"$WORK/d.err" \
    3>&- 4>&-
PID_D=$!
wait_registered "$D" "$mark"
spawn 60 "$TCPUNCH" -v -s "$SRV" -i "$C" chat "$D" <"$WORK/c.fifo" >"$WORK/c.out" \
    2>"$WORK/c.err" 3>&- 4>&-
PID_C=$!
echo "before the cut" >&3
wait_until 15 grep -q -F -x "$C: before the cut" "$WORK/d.out" || fail "the first line did not arrive"
cut_link "$(under_timeout "$PID_C")"
echo "typed while cut" >&3
wait_until 20 grep -q "resumed with" "$WORK/c.err" || fail "chat: no resume logged"
echo "after the resume" >&4
wait_until 10 grep -q -F -x "$D: after the resume" "$WORK/c.out"
check_rc "chat: a line after the resume arrives" 0 $?
wait_until 10 grep -q -F -x "$C: typed while cut" "$WORK/d.out"
check_rc "chat: a line typed while suspended arrives" 0 $?
echo "/quit" >&3
wait "$PID_C"
check_rc "chat: /quit after the resume: exit 0" 0 $?
exec 3>&-
wait "$PID_D"
check_rc "chat: the other side: exit 0" 0 $?
exec 4>&-
check "chat: the lines arrive once each, in order" test "$(cat "$WORK/d.out")" = \
    "$(printf '%s\n%s' "$C: before the cut" "$C: typed while cut")"

# ---- 2b. chat on a terminal says so: `-- connection lost, resuming --`, `-- resumed --`
E=$(uid rchat-e)
F=$(uid rchat-f)
mkfifo "$WORK/f.fifo"
exec 5<>"$WORK/f.fifo"
mark=$(log_mark)
spawn 60 "$TCPUNCH" -v -s "$SRV" -i "$F" chat <"$WORK/f.fifo" >"$WORK/f.out" 2>"$WORK/f.err" 5>&-
PID_F=$!
wait_registered "$F" "$mark"
# E's stdin and stderr are a pty; the script types a line, waits for GO, then types /quit
timeout -k 2 60 python3 - "$WORK/e.tty" "$WORK/go" "$TCPUNCH" -v -s "$SRV" -i "$E" chat "$F" \
    >"$WORK/e.out" <<'EOF_PY' &
import os, pty, select, subprocess, sys, time
out, go, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
master, slave = pty.openpty()
p = subprocess.Popen(cmd, stdin=slave, stderr=slave)
os.close(slave)
os.write(master, b"on a terminal\n")
data, quit_sent, end = b"", False, time.time() + 50
while time.time() < end:
    if not quit_sent and os.path.exists(go):
        os.write(master, b"/quit\n")
        quit_sent = True
    r, _, _ = select.select([master], [], [], 0.1)
    if r:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
open(out, "wb").write(data)
sys.exit(p.wait())
EOF_PY
PID_E=$!
BG_PIDS+=($PID_E)
wait_until 15 grep -q -F "$E: on a terminal" "$WORK/f.out" || fail "the tty chat's line did not arrive"
cut_link "$(under_timeout "$PID_F")"
wait_until 20 grep -q "resumed with" "$WORK/f.err" || fail "the tty chat: no resume logged"
sleep 0.5
touch "$WORK/go"
wait "$PID_E"
check_rc "the tty chat after /quit: exit 0" 0 $?
exec 5>&-
wait "$PID_F"
check "the tty chat printed -- connection lost, resuming --" \
    grep -q -F -- "-- connection lost, resuming --" "$WORK/e.tty"
check "the tty chat printed -- resumed --" grep -q -F -- "-- resumed --" "$WORK/e.tty"
check "the chat without a terminal printed neither" \
    sh -c "! grep -q -F -- '-- resumed --' '$WORK/f.err'"

# ---- 3. the receiver killed -9: not resumed, exit 11 at the sender within its timeout
B3=$(uid krecv)
A3=$(uid ksend)
mkdir -p "$WORK/dst3"
mark=$(log_mark)
spawn 60 "$TCPUNCH" -v -s "$SRV" -i "$B3" --from "$A3" --dir "$WORK/dst3" --resume-timeout 3 \
    receive >"$WORK/r3.out" 2>"$WORK/r3.err"
PID_R3=$!
wait_registered "$B3" "$mark"
spawn 60 "$TCPUNCH" -v -s "$SRV" -i "$A3" --resume-timeout 3 send "$B3" "$WORK/src/big.bin" \
    >"$WORK/s3.out" 2>"$WORK/s3.err"
PID_S3=$!
REAL_R3=$(under_timeout "$PID_R3")
for _ in $(seq 1 2000); do
    [ -n "$(find "$WORK/dst3" -name '*.tcpunch-part-*' 2>/dev/null)" ] && break
    sleep 0.005
done
kill -STOP "$REAL_R3"
sleep 0.3
t0=$(date +%s)
kill -9 "$REAL_R3"
wait "$PID_S3"
check_rc "send whose receiver was killed: exit 11 (not resumed)" 11 $?
t=$(($(date +%s) - t0))
check "the sender gave up within about its resume timeout (${t} s)" test "$t" -le 10
check "no file under the final name" test ! -e "$WORK/dst3/big.bin"
wait "$PID_R3" 2>/dev/null

# ---- 4. the sender killed -9: the receiver exits 11 and removes its part file
B4=$(uid k4recv)
A4=$(uid k4send)
mkdir -p "$WORK/dst4"
mark=$(log_mark)
spawn 60 "$TCPUNCH" -v -s "$SRV" -i "$B4" --from "$A4" --dir "$WORK/dst4" --resume-timeout 3 \
    receive >"$WORK/r4.out" 2>"$WORK/r4.err"
PID_R4=$!
wait_registered "$B4" "$mark"
spawn 60 "$TCPUNCH" -v -s "$SRV" -i "$A4" --resume-timeout 3 send "$B4" "$WORK/src/big.bin" \
    >"$WORK/s4.out" 2>"$WORK/s4.err"
PID_S4=$!
REAL_R4=$(under_timeout "$PID_R4")
for _ in $(seq 1 2000); do
    [ -n "$(find "$WORK/dst4" -name '*.tcpunch-part-*' 2>/dev/null)" ] && break
    sleep 0.005
done
kill -STOP "$REAL_R4"
sleep 0.3
kill -9 "$(under_timeout "$PID_S4")"
kill -CONT "$REAL_R4"
wait "$PID_R4"
check_rc "receive whose sender was killed: exit 11 (not resumed)" 11 $?
check "the receiver logged that it was not resumed" grep -q "not resumed" "$WORK/r4.err"
check "no part file left" test -z "$(find "$WORK/dst4" -name '*.tcpunch-part-*')"
check "no file under the final name" test ! -e "$WORK/dst4/big.bin"
wait "$PID_S4" 2>/dev/null

finish
