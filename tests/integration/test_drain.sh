#!/usr/bin/env bash
# --drain SEC on one instance: SIGTERM stops accepting, tells the registered peers
# Signals go to the server itself: `timeout` would turn a forwarded SIGTERM into a KILL 2 s later.
# server-shutdown, lets a relayed session in progress finish intact, then exits 0. Without
# --drain the server exits at once (the relay is cut); a second SIGTERM ends a drain at once.
source "$(dirname "$0")/lib.sh" "$@"

# slow_relay TAG: a relayed pipe of 1 MiB each way at --relay-rate (the server's), in the
# background: listen TAG-b, connect TAG-a; PID_A, PID_B
slow_relay() {
    local bid aid mark
    bid=$(uid "$1-b")
    aid=$(uid "$1-a")
    mark=$(log_mark)
    spawn 90 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$bid" --relay-only listen \
        <"$WORK/b.in" >"$WORK/$1-b.out" 2>"$WORK/$1-b.err"
    PID_B=$!
    wait_registered "$bid" "$mark"
    spawn 90 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$aid" connect "$bid" \
        <"$WORK/a.in" >"$WORK/$1-a.out" 2>"$WORK/$1-a.err"
    PID_A=$!
    wait_until 10 registered_since "joined, splicing" "$mark" || die "$1: the relay never spliced"
}

# waiting ID: a registered listen that only waits (it is told to go); PID_W
waiting() {
    local mark
    mark=$(log_mark)
    spawn 90 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$1" listen </dev/null \
        >"$WORK/$1.out" 2>"$WORK/$1.err"
    PID_W=$!
    wait_registered "$1" "$mark"
}

# stop_pair: the cut pair's peers are not what is tested (a cut session may wait to resume)
stop_pair() {
    kill "$PID_A" "$PID_B" 2>/dev/null
    wait "$PID_A" "$PID_B" 2>/dev/null
}

# gone_within SECONDS PID: PID has exited within SECONDS
gone_within() {
    wait_until "$1" bash -c "! kill -0 $2 2>/dev/null"
}

head -c 1048576 /dev/urandom >"$WORK/a.in"
head -c 1048576 /dev/urandom >"$WORK/b.in"

# ---- --drain 10: the relayed pipe (about 5 s at 200 KiB/s) finishes across the SIGTERM ----
MPORT=$(free_port) || die "no free port"
start_server --drain 10 --relay-rate 200K --metrics-listen "127.0.0.1:$MPORT"
W=$(uid waiter)
waiting "$W"
slow_relay d
sleep 1
mark=$(log_mark)
t0=$(date +%s%3N)
kill -TERM "$(under_timeout "$SERVER_PID")"
wait_until 5 registered_since "drain (SIGTERM)" "$mark" || fail "the server did not log its drain"
if wait_until 2 bash -c "! ss -Htln 'sport = :$SERVER_PORT' | grep -q ."; then
    pass "draining: the listener is closed"
else
    fail "draining: still listening on $SERVER_PORT"
fi
healthz() { curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MPORT/healthz"; }
if command -v curl >/dev/null; then
    code=$(healthz)
    if [ "$code" = 503 ]; then
        pass "draining: /healthz answers 503 (load balancers stop sending)"
    else
        fail "draining: /healthz answers $code, want 503"
    fi
fi
wait_until 5 grep -q "server-shutdown" "$WORK/$W.err" && pass "the waiting listen was told server-shutdown" ||
    fail "the waiting listen was not told server-shutdown"
check "the waiting listen keeps trying (a peer alone reconnects after a pause)" kill -0 "$PID_W"
wait "$PID_A"
check_rc "drain: the relayed connect side" 0 $?
wait "$PID_B"
check_rc "drain: the relayed listen side" 0 $?
same_file "drain: 1 MiB a -> b through the draining relay" "$WORK/a.in" "$WORK/d-b.out"
same_file "drain: 1 MiB b -> a through the draining relay" "$WORK/b.in" "$WORK/d-a.out"
wait "$SERVER_PID"
check_rc "the drained server" 0 $?
t1=$(date +%s%3N)
check "the relay ended by itself (both sides closed), not cut" \
    grep -q -E "ended after .*both sides closed" <(log_since "$mark")
check "then the drain was done" grep -q "drain: done after" <(log_since "$mark")
if [ $((t1 - t0)) -ge 2000 ] && [ $((t1 - t0)) -lt 10000 ]; then
    pass "the server exited $((t1 - t0)) ms after SIGTERM: after the relay, before --drain 10"
else
    fail "the server exited $((t1 - t0)) ms after SIGTERM (want 2000..10000)"
fi
kill "$PID_W" 2>/dev/null
wait "$PID_W" 2>/dev/null

# ---- no --drain: the server exits at once, the relay is cut ----
start_server --relay-rate 200K
slow_relay n
sleep 1
t0=$(date +%s%3N)
kill -TERM "$(under_timeout "$SERVER_PID")"
if gone_within 3 "$SERVER_PID"; then
    pass "without --drain the server exits at once ($(($(date +%s%3N) - t0)) ms)"
else
    fail "without --drain the server still runs 3 s after SIGTERM"
fi
wait "$SERVER_PID"
check_rc "the stopped server" 0 $?
stop_pair
check "without --drain the relayed pipe was cut" bash -c "! cmp -s '$WORK/a.in' '$WORK/n-b.out'"

# ---- --drain 2: the relay still runs at SEC and is cut then; the exit is still 0 ----
start_server --drain 2 --relay-rate 200K
slow_relay c
mark=$(log_mark)
t0=$(date +%s%3N)
kill -TERM "$(under_timeout "$SERVER_PID")"
if gone_within 5 "$SERVER_PID"; then
    pass "--drain 2: the server exits at its deadline ($(($(date +%s%3N) - t0)) ms)"
else
    fail "--drain 2: the server still runs 5 s after SIGTERM"
fi
wait "$SERVER_PID"
check_rc "the server after its drain deadline" 0 $?
check "it says the drain time is over and cuts the relay" \
    grep -q "drain: 2 s are over: cutting 1 relayed sessions" <(log_since "$mark")
stop_pair

# ---- --drain 30 and a second SIGTERM: it ends at once ----
start_server --drain 30 --relay-rate 200K
slow_relay s
sleep 0.5
kill -TERM "$(under_timeout "$SERVER_PID")"
sleep 1
check "draining, the server waits for its relay" kill -0 "$SERVER_PID"
t0=$(date +%s%3N)
kill -TERM "$(under_timeout "$SERVER_PID")"
if gone_within 3 "$SERVER_PID"; then
    pass "a second SIGTERM ends the drain at once ($(($(date +%s%3N) - t0)) ms)"
else
    fail "the server still runs 3 s after the second SIGTERM"
fi
wait "$SERVER_PID"
check_rc "the server after two SIGTERMs" 0 $?
stop_pair

# ---- peers that leave on their own during the spread: the drain ends when nobody is left ----
# (it waited for --drain SEC when a registered peer went before its turn: told never reached
# the count taken at the SIGTERM)
start_server --drain 15
for k in 1 2 3; do
    waiting "$(uid "leave$k")"
    eval "PID_L$k=$PID_W"
done
mark=$(log_mark)
t0=$(date +%s%3N)
kill -TERM "$(under_timeout "$SERVER_PID")"
# two of the three go at once (before the spread of 3 s reaches them); the third is told
kill -KILL "$(under_timeout "$PID_L2")" "$(under_timeout "$PID_L3")" 2>/dev/null
if gone_within 8 "$SERVER_PID"; then
    pass "the drain ends once every peer has gone ($(($(date +%s%3N) - t0)) ms, not --drain 15)"
else
    fail "the server still drains 8 s after SIGTERM with no peer left"
fi
wait "$SERVER_PID"
check_rc "the server drained of peers that left" 0 $?
check "it logs the drain as done, not as over" grep -q "drain: done after" <(log_since "$mark")
kill "$PID_L1" "$PID_L2" "$PID_L3" 2>/dev/null
wait "$PID_L1" "$PID_L2" "$PID_L3" 2>/dev/null

# ---- a relayed session with one side waiting: nobody can join it any more ----
start_server --drain 10
t0=$(date +%s%3N)
timeout -k 2 30 python3 "$(dirname "$0")/relay_raw.py" drain 127.0.0.1 "$SERVER_PORT" "$SERVER_PID"
check_rc "relay_raw.py drain" 0 $?
gone_within 12 "$SERVER_PID"
t1=$(date +%s%3N)
if [ $((t1 - t0)) -lt 7000 ]; then
    pass "a lone relay side does not hold the drain (gone $((t1 - t0)) ms after the start)"
else
    fail "the server drained $((t1 - t0)) ms, held by a relay side nobody can join (--drain 10)"
fi
wait "$SERVER_PID"
check_rc "the server drained with a lone relay side" 0 $?

finish
