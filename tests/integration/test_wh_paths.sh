#!/bin/bash
# A code session on the other paths (docs/design/wormhole.md 6.3: the stream keys and the
# resumption secret are bound to the code's PAKE key):
#  - relayed: `send --relay-only FILE` / `receive --relay-only CODE`: the file arrives through
#    the server's relay, both sides say "relay via";
#  - cut and resumed: a 48 MiB code send whose peer-to-peer connection is cut (ss -K) while the
#    receiver is stopped mid-transfer resumes and completes with the same checksum (both sides
#    log "resumed with"). Needs ss -K (root, INET_DIAG_DESTROY): without it the test says
#    SKIPPED (exit 77) once the relayed part has passed.
source "$(dirname "$0")/lib.sh" "$@"
source "$TESTDIR/wh.sh"

start_server --code-rate 0
SRV=127.0.0.1:$SERVER_PORT
mkdir -p "$WORK/dst1" "$WORK/dst2"
head -c $((2 * 1024 * 1024)) /dev/urandom >"$WORK/small.bin"

# ---- relayed
wh_maker s1 60 -s "$SRV" -i "$(uid maker)" --relay-only send "$WORK/small.bin"
timeout -k 2 60 "$TCPUNCH" -s "$SRV" -i "$(uid taker)" --relay-only receive "$CODE" \
    --dir "$WORK/dst1" >/dev/null 2>"$WORK/r1.err"
check_rc "receive --relay-only CODE" 0 $?
wh_wait "$MAKER_PID" 30
check_rc "send --relay-only (code)" 0 $?
same_file "the file through the relay" "$WORK/small.bin" "$WORK/dst1/small.bin"
wh_said "$WORK/s1.err" "connected to [^ ]+: relay via" "the maker went through the relay"
wh_said "$WORK/r1.err" "connected to [^ ]+: relay via" "the receiver went through the relay"

# ---- cut and resumed
ss_k_works() {
    python3 - <<'PY'
import socket, subprocess, sys
l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen()
c = socket.create_connection(l.getsockname()); s, _ = l.accept()
subprocess.run(['ss', '-K', '( sport = :%d )' % c.getsockname()[1]], capture_output=True)
s.settimeout(2)
try:
    s.recv(1)
    sys.exit(1)
except ConnectionResetError:
    sys.exit(0)
except Exception:
    sys.exit(1)
PY
}
if ! ss_k_works; then
    [ "$FAILS" -eq 0 ] || finish   # the relayed part failed: that is the result
    echo "SKIPPED: the cut: ss -K cannot cut a loopback connection here (needs root and INET_DIAG_DESTROY); the relayed part passed" >&2
    exit 77
fi
# peer_port PID: the local port of PID's established TCP connection that is not the server's
peer_port() {
    ss -tnpH state established | grep "pid=$1," | awk -v s=":$SERVER_PORT" \
        '$3 !~ s"$" && $4 !~ s"$" {n = split($3, a, ":"); print a[n]; exit}'
}
SIZE=$((48 * 1024 * 1024))
head -c "$SIZE" /dev/urandom >"$WORK/big.bin"
wh_maker s2 90 -v -s "$SRV" -i "$(uid bigmaker)" send "$WORK/big.bin"
PID_S=$MAKER_PID
spawn 90 "$TCPUNCH" -v -s "$SRV" -i "$(uid bigtaker)" receive "$CODE" --dir "$WORK/dst2" \
    >/dev/null 2>"$WORK/r2.err"
PID_R=$!
REAL_R=$(under_timeout "$PID_R")
for _ in $(seq 1 2000); do
    [ -n "$(find "$WORK/dst2" -name '*.tcpunch-part-*' 2>/dev/null)" ] && break
    sleep 0.005
done
kill -STOP "$REAL_R"
part=$(find "$WORK/dst2" -name '*.tcpunch-part-*')
[ -n "$part" ] || { kill -CONT "$REAL_R"; die "the code transfer did not start"; }
sleep 0.5
got=$(stat -c %s "$part")
check "the receiver was stopped mid-transfer ($got of $SIZE bytes)" test "$got" -lt "$SIZE"
port=$(peer_port "$(under_timeout "$PID_S")")
if [ -n "$port" ]; then
    ss -K "( sport = :$port )" >/dev/null 2>&1
    pass "cut the code session's peer-to-peer connection (local port $port)"
else
    fail "no peer-to-peer connection of the maker to cut"
fi
sleep 3
kill -CONT "$REAL_R"
wh_wait "$PID_S" 60
check_rc "the code send cut mid-transfer" 0 $?
wh_wait "$PID_R" 30
check_rc "the code receive cut mid-transfer" 0 $?
same_file "the 48 MiB file after the cut" "$WORK/big.bin" "$WORK/dst2/big.bin"
wh_said "$WORK/s2.err" "resumed with" "the maker resumed"
wh_said "$WORK/r2.err" "resumed with" "the receiver resumed"

finish
