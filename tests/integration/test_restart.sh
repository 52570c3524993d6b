#!/usr/bin/env bash
# Same key, fresh connection (PROTOCOL.md 5.1, hello.replace): a listen killed with SIGKILL
# leaves its connection open at the server until the keepalive; started again at once with
# the same id and key it takes the id within one round trip instead of "already online". A
# different key is still refused (id-taken); a live older process gets `replaced` and exits 2;
# a key's owner replacing in a loop is rate-limited. Every wait is bounded.
source "$(dirname "$0")/lib.sh"

now_ms() { date +%s%3N; }

# registered_count ID OFFSET: how many register lines of ID the log has after OFFSET
registered_count() {
    log_since "$2" | grep -c -F -- "register $1 from"
}

# start_listen ID OUT: a listen of ID (its home, so its key, is the id's) in the background
start_listen() {
    spawn 60 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$1" listen </dev/null >"$WORK/$2.out" \
        2>"$WORK/$2.err"
}

printf 'through the restarted listen\n' >"$WORK/msg"

# keepalive 60 s: anything registered again within a second is the replace, not a timeout
start_server --keepalive 60

# the first listen reaches the server through holdproxy.py, a NAT that keeps the server's side
# of the connection open after the listen is gone (on plain loopback the kernel would close it)
PROXY_PORT=$(free_port) || die "no free port"
spawn 60 python3 "$TESTDIR/holdproxy.py" "$PROXY_PORT" "$SERVER_PORT"
PROXY_PID=$!
wait_until 5 listening "$PROXY_PORT" || die "holdproxy.py does not listen"

ID=$(uid restarted)
mark=$(log_mark)
spawn 60 "$TCPUNCH" -s "127.0.0.1:$PROXY_PORT" -i "$ID" listen </dev/null >"$WORK/l1.out" \
    2>"$WORK/l1.err"
PID1=$!
wait_registered "$ID" "$mark"
kill -KILL "$(under_timeout "$PID1")"
wait "$PID1" 2>/dev/null
sleep 0.3
check "the old connection is still registered at the server (no keepalive yet)" \
    bash -c "! grep -q 'drop $ID' '$SERVER_LOG'"

mark=$(log_mark)
t0=$(now_ms)
start_listen "$ID" l2
PID2=$!
wait_until 5 registered_since "register $ID from" "$mark" ||
    die "the restarted listen was not registered again within 5 s"
t1=$(now_ms)
elapsed=$((t1 - t0))
if [ "$elapsed" -le 1500 ]; then
    pass "registered again ${elapsed} ms after the restart (keepalive 60 s)"
else
    fail "registered again only ${elapsed} ms after the restart (want <= 1500)"
fi
check "the server logged the replace" registered_since "replace $ID: the connection from" "$mark"
sleep 0.3
check "the restarted listen still runs" kill -0 "$PID2"
check "it was never told the id is online" bash -c "! grep -q 'already online' '$WORK/l2.err'"

# a different key on the same id: refused as before
mark=$(log_mark)
TCPUNCH_HOME=$WORK/home/intruder timeout -k 2 20 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" \
    -i "$ID" listen </dev/null >"$WORK/l3.out" 2>"$WORK/l3.err"
check_rc "another key on the same id" 2 $?
check "it is refused: the id belongs to another key" grep -q "belongs to another key" "$WORK/l3.err"
check "the server refused it (id-owned, as without replace)" registered_since "id-owned" "$mark"
check "the restarted listen kept the id" kill -0 "$PID2"

# a connect reaches the restarted listen
timeout -k 2 30 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$(uid asker)" connect "$ID" \
    <"$WORK/msg" >"$WORK/a.out" 2>"$WORK/a.err"
check_rc "connect to the restarted listen" 0 $?
wait "$PID2"
check_rc "the restarted listen" 0 $?
same_file "data through the restarted listen" "$WORK/msg" "$WORK/l2.out"

# a live older process with the same key: it gets `replaced`, says so, exits 2, no reconnect
ID=$(uid twice)
mark=$(log_mark)
start_listen "$ID" o1
PIDO=$!
wait_registered "$ID" "$mark"
mark=$(log_mark)
start_listen "$ID" o2
PIDN=$!
wait_until 5 registered_since "register $ID from" "$mark" || fail "the newer listen was not registered"
wait "$PIDO"
check_rc "the replaced older listen" 2 $?
check "it says another connection of ours took the id" \
    grep -q "another connection of ours (same key) took the id $ID" "$WORK/o1.err"
check "it does not reconnect" bash -c "! grep -q 'reconnecting to' '$WORK/o1.err'"
kill "$PIDN" 2>/dev/null
wait "$PIDN" 2>/dev/null

# the key's owner replacing in a loop: after a burst, replaces are refused (rate-limited)
ID=$(uid flap)
mark=$(log_mark)
start_listen "$ID" f0
PREV=$!
wait_registered "$ID" "$mark"
limited=0
for i in 1 2 3 4 5 6 7 8 9 10; do
    m=$(log_mark)
    start_listen "$ID" "f$i"
    CUR=$!
    wait_until 5 registered_since "$ID" "$m" || true
    kill -KILL "$(under_timeout "$PREV")" 2>/dev/null
    wait "$PREV" 2>/dev/null
    PREV=$CUR
    if grep -q "rate-limited" "$WORK/f$i.err" ||
        log_since "$m" | grep -q "replaced more than"; then
        limited=$i
        break
    fi
done
if [ "$limited" -gt 5 ]; then
    pass "replacing $ID in a loop: refused (rate-limited) at replace $limited"
else
    fail "replacing $ID in a loop: never refused, or too early (at $limited; burst 5)"
fi
kill "$PREV" 2>/dev/null
wait "$PREV" 2>/dev/null

# --no-resume: replace is still taken (challenge.features "replace")
kill -TERM "$SERVER_PID" "$PROXY_PID"
wait "$SERVER_PID" "$PROXY_PID" 2>/dev/null
start_server --keepalive 60 --no-resume
PROXY_PORT=$(free_port) || die "no free port"
ID=$(uid noresume)
mark=$(log_mark)
spawn 60 python3 "$TESTDIR/holdproxy.py" "$PROXY_PORT" "$SERVER_PORT"
wait_until 5 listening "$PROXY_PORT" || die "holdproxy.py does not listen"
spawn 60 "$TCPUNCH" -s "127.0.0.1:$PROXY_PORT" -i "$ID" listen </dev/null >"$WORK/n1.out" \
    2>"$WORK/n1.err"
PID1=$!
wait_registered "$ID" "$mark"
kill -KILL "$(under_timeout "$PID1")"
wait "$PID1" 2>/dev/null
mark=$(log_mark)
start_listen "$ID" n2
PID2=$!
if wait_until 3 registered_since "register $ID from" "$mark"; then
    pass "--no-resume: the restarted listen took its id at once"
else
    fail "--no-resume: the restarted listen was not registered again"
fi
kill "$PID2" 2>/dev/null
wait "$PID2" 2>/dev/null

finish
