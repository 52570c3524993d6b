#!/usr/bin/env bash
# Forwarding survives a path loss (issue 15 section 3, docs/design/resume.md 4.5): a
# `connect --local` client streams numbered lines through a `listen --forward` to an echo
# service; the peer-to-peer connection is cut with `ss -K` (the control connections stay); the
# session resumes (the initiator re-punches through an auxiliary connection, the forwarder's
# control connection routes the resume order to the suspended session without registering
# again), the echoed lines come back all and in order, the service saw one connection only,
# and the forwarder is still registered for the next client. Needs root for `ss -K`.
source "$(dirname "$0")/lib.sh"

TOOL=$TESTDIR/fwdtool.py
command -v python3 >/dev/null || die "python3 is needed"
# ss -K needs CAP_NET_ADMIN and a kernel with INET_DIAG_DESTROY: try it on a connection of ours
probe_kill() {
    local p rc
    p=$(free_port) || return 1
    python3 -c 'import socket,sys,time
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1)
c=socket.create_connection(("127.0.0.1", int(sys.argv[1]))); a,_=s.accept()
time.sleep(3)' "$p" &
    local py=$!
    sleep 0.5
    ss -K "( sport = :$p )" >/dev/null 2>&1
    rc=$?
    local n
    n=$(ss -Htn state established "( sport = :$p or dport = :$p )" | wc -l)
    kill "$py" 2>/dev/null
    wait "$py" 2>/dev/null
    [ "$rc" -eq 0 ] && [ "$n" -eq 0 ]
}
if ! probe_kill; then
    echo "SKIPPED: ss -K cannot destroy sockets here (needs root and INET_DIAG_DESTROY)"
    exit 77
fi

start_server
SRV=127.0.0.1:$SERVER_PORT
start_echo 120
BOB=$(uid bob)
ALICE=$(uid alice)
mark=$(log_mark)
spawn 110 "$TCPUNCH" -s "$SRV" -i "$BOB" -v listen --forward "127.0.0.1:$ECHO_PORT" \
    --allow-anyone </dev/null >"$WORK/fwd.out" 2>"$WORK/fwd.err"
FWD_PID=$!
wait_registered "$BOB" "$mark"
LOCAL_PORT=$(free_port)
spawn 100 "$TCPUNCH" -s "$SRV" -i "$ALICE" -v connect "$BOB" --local "$LOCAL_PORT" \
    </dev/null >"$WORK/local.out" 2>"$WORK/local.err"
LOCAL_PID=$!
wait_until 5 listening "$LOCAL_PORT" || die "connect --local does not listen on $LOCAL_PORT"

# 100 lines, one every 60 ms: the cut falls in the middle of the stream
spawn 60 python3 "$TOOL" lines "$LOCAL_PORT" 100 60 "$WORK/lines.out"
LINES_PID=$!
connected_both() {
    grep -q "connected to $ALICE: direct" "$WORK/fwd.err" &&
        grep -q "connected to $BOB: direct" "$WORK/local.err"
}
wait_until 10 connected_both || die "the session through the forwarder did not come up"
# the 4-tuple of the peer-to-peer connection, from both sides' "connected to" lines
P=$(sed -n "s/.*connected to $BOB: direct, 127\.0\.0\.1:\([0-9]*\) .*/\1/p" "$WORK/local.err" | head -n 1)
Q=$(sed -n "s/.*connected to $ALICE: direct, 127\.0\.0\.1:\([0-9]*\) .*/\1/p" "$WORK/fwd.err" | head -n 1)
[ -n "$P" ] && [ -n "$Q" ] || die "cannot tell the peer-to-peer ports from the logs"
sleep 2
ss -K "( sport = :$P and dport = :$Q ) or ( sport = :$Q and dport = :$P )" >/dev/null 2>&1
check "the peer-to-peer connection :$P <-> :$Q is gone after ss -K" \
    test "$(ss -Htn state established "( sport = :$P and dport = :$Q )" | wc -l)" -eq 0
wait "$LINES_PID"
check_rc "the client got all 100 lines back, in order, across the cut" 0 $?
check "the forwarder says it resumed" grep -q "resumed with $ALICE" "$WORK/fwd.err"
check "connect --local says it resumed" grep -q "resumed with $BOB" "$WORK/local.err"
check "the service saw one connection (the resume dialled nothing)" test "$(echo_conns)" -eq 1
check "the forwarder did not register again" \
    test "$(grep -c "register $BOB from" "$SERVER_LOG")" -eq 1
check "the forwarder still runs" kill -0 "$FWD_PID"

# the forwarder stays registered: another client gets through
check "a second client afterwards" timeout 60 python3 "$TOOL" clients "$LOCAL_PORT" 1 65536
check "the service saw a second connection" test "$(echo_conns)" -eq 2
finish
