#!/usr/bin/env bash
# listen waits for its server: down at start, or restarted while it waits. It reconnects with
# back-off, registers again, and then connects to a peer as usual. Every wait is bounded.
source "$(dirname "$0")/lib.sh"

# The rendezvous on a given port (start_server picks its own): sets SERVER_* like start_server.
start_on() {
    SERVER_PORT=$1
    SERVER_LOG=$WORK/server.log
    timeout -k 2 120 "$RENDEZVOUS" -v -l "127.0.0.1:$1" --max-per-ip 0 --rate-per-ip 0 \
        --connect-rate 0 >>"$WORK/server.out" 2>>"$SERVER_LOG" &
    SERVER_PID=$!
    BG_PIDS+=($SERVER_PID)
    wait_until 5 listening "$1" || die "the rendezvous does not listen on 127.0.0.1:$1"
}

# connect_to ID WHAT: a peer connects to listener ID and sends a line; both must exit 0.
connect_to() {
    timeout -k 2 30 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$(uid asker)" connect "$1" \
        <"$WORK/msg" >"$WORK/a.out" 2>"$WORK/a.err"
    check_rc "$2: connect" 0 $?
}

not_in() { # TEXT FILE
    ! grep -q -F -- "$1" "$2"
}

printf 'after the restart\n' >"$WORK/msg"
touch "$WORK/server.log"
PORT=$(free_port)

# ---- the server is down when listen starts ----
ID=$(uid early)
spawn 60 "$TCPUNCH" -s "127.0.0.1:$PORT" -i "$ID" listen </dev/null >"$WORK/b1.out" 2>"$WORK/b1.err"
PID=$!
sleep 2.5
check "listen keeps waiting while the server is down" kill -0 "$PID"
check "and says when it tries again" grep -q "reconnecting to the server 127.0.0.1:$PORT in" "$WORK/b1.err"
check "the failures are warnings, not errors" not_in "error:" "$WORK/b1.err"
start_on "$PORT"
wait_registered "$ID"
pass "listen registered once the server came up"
connect_to "$ID" "server down at start"
wait "$PID"
check_rc "server down at start: listen" 0 $?
same_file "server down at start: data" "$WORK/msg" "$WORK/b1.out"

# ---- the server restarts while listen waits ----
ID=$(uid restart)
mark=$(log_mark)
spawn 60 "$TCPUNCH" -s "127.0.0.1:$PORT" -i "$ID" listen </dev/null >"$WORK/b2.out" 2>"$WORK/b2.err"
PID=$!
wait_registered "$ID" "$mark"
kill -TERM "$SERVER_PID"
wait "$SERVER_PID"
sleep 1.5
check "listen outlives its server" kill -0 "$PID"
check "it was told server-shutdown" grep -q "server-shutdown" "$WORK/b2.err"
mark=$(log_mark)
start_on "$PORT"
wait_registered "$ID" "$mark"
pass "listen registered again after the restart"
connect_to "$ID" "server restarted"
wait "$PID"
check_rc "server restarted: listen" 0 $?
same_file "server restarted: data" "$WORK/msg" "$WORK/b2.out"

finish
