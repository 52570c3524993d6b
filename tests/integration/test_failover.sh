#!/usr/bin/env bash
# --server lists several rendezvous servers (independent ones here, no cluster): the first that
# answers is used; listen moves to the next when its server dies and registers its id there
# again; bad lists are usage errors; all servers down is exit 2 naming each. Every wait is
# bounded.
source "$(dirname "$0")/lib.sh"

# start_rv N: a rendezvous on a free port; sets PORT_N and PID_N, logs to $WORK/sN.log.
start_rv() {
    local n=$1 p try
    for try in 1 2 3; do
        p=$(free_port) || die "no free port"
        timeout -k 2 150 "$RENDEZVOUS" -v -l "127.0.0.1:$p" --max-per-ip 0 --rate-per-ip 0 \
            --connect-rate 0 "${@:2}" >/dev/null 2>>"$WORK/s$n.log" &
        printf -v "PID_$n" %s $!
        BG_PIDS+=($!)
        if wait_until 5 listening "$p"; then
            printf -v "PORT_$n" %s "$p"
            return 0
        fi
    done
    die "rendezvous $n would not start"
}

# sig N SIGNAL: signals server N itself (PID_N is its `timeout`, which passes TERM on but
# cannot pass on KILL or STOP).
sig() {
    local t=PID_$1
    kill -"$2" "$(under_timeout "${!t}")"
}

in_log() { # N TEXT: server N logged TEXT
    grep -q -F -- "$2" "$WORK/s$1.log"
}

# A port nothing listens on: a dead server.
DEAD=$(free_port)
touch "$WORK/s1.log" "$WORK/s2.log" "$WORK/s3.log"
printf 'through the second server\n' >"$WORK/msg"

# ---- malformed lists: usage errors (exit 1), nothing contacted ----
for bad in "," "127.0.0.1:$DEAD,,127.0.0.1:$DEAD" "127.0.0.1:$DEAD," ",127.0.0.1:$DEAD" \
    "127.0.0.1:$DEAD,127.0.0.1:0" "127.0.0.1:$DEAD,127.0.0.1:99999" "127.0.0.1:$DEAD,127.0.0.1:x" \
    "127.0.0.1:$DEAD,nohost" " , "; do
    timeout 10 "$TCPUNCH" -s "$bad" -i alice connect bob </dev/null >/dev/null 2>"$WORK/bad.err"
    check_rc "--server \"$bad\"" 1 $?
    check "--server \"$bad\": says why" grep -q -E "empty|port|HOST:PORT" "$WORK/bad.err"
done
TCPUNCH_SERVER="127.0.0.1:$DEAD,," timeout 10 "$TCPUNCH" -i alice connect bob </dev/null \
    >/dev/null 2>"$WORK/bad.err"
check_rc "TCPUNCH_SERVER with an empty item" 1 $?
mkdir -p "$WORK/cfghome"
printf 'server = 127.0.0.1:%s,,\n' "$DEAD" >"$WORK/cfghome/config"
TCPUNCH_HOME=$WORK/cfghome timeout 10 "$TCPUNCH" -i alice connect bob </dev/null >/dev/null \
    2>"$WORK/bad.err"
check_rc "config file server with an empty item" 1 $?
check "config file: names the line" grep -q "config:1" "$WORK/bad.err"
printf 'server = 127.0.0.1:%s, 127.0.0.1:%s\n' "$DEAD" "$((DEAD + 1))" >"$WORK/cfghome/config"
TCPUNCH_HOME=$WORK/cfghome timeout 10 "$TCPUNCH" config >"$WORK/cfg.out" 2>&1
check "config file: a list is taken" grep -q "^server = 127.0.0.1:$DEAD, 127.0.0.1:" "$WORK/cfg.out"

# ---- all servers down: exit 2, each named ----
D2=$(free_port)
for cmd in "connect bob" "nat-check" "--no-retry listen"; do
    # shellcheck disable=SC2086 # cmd is words
    timeout 20 "$TCPUNCH" -s "127.0.0.1:$DEAD,127.0.0.1:$D2" -i alice $cmd </dev/null \
        >/dev/null 2>"$WORK/down.err"
    check_rc "all servers down: $cmd" 2 $?
    check "all servers down: $cmd names the first" grep -q "127.0.0.1:$DEAD" "$WORK/down.err"
    check "all servers down: $cmd names the second" grep -q "127.0.0.1:$D2" "$WORK/down.err"
done
timeout 20 "$TCPUNCH" --json -s "127.0.0.1:$DEAD,127.0.0.1:$D2" -i alice connect bob \
    </dev/null >/dev/null 2>"$WORK/down.json"
check "--json: the error event names both" \
    grep -q -E "\"event\":\"error\".*127\.0\.0\.1:$DEAD.*127\.0\.0\.1:$D2" "$WORK/down.json"

# ---- a dead first server: the second is used ----
start_rv 1
start_rv 2
ID=$(uid bob)
spawn 60 "$TCPUNCH" -s "127.0.0.1:$DEAD,127.0.0.1:$PORT_2" -i "$ID" listen </dev/null \
    >"$WORK/b1.out" 2>"$WORK/b1.err"
PID=$!
wait_until 10 in_log 2 "$ID" || die "listen never registered on the second server"
pass "listen: dead first server, registered on the second"
check "listen: says which server" grep -q "registered as $ID on 127.0.0.1:$PORT_2" "$WORK/b1.err"
timeout -k 2 30 "$TCPUNCH" --json -s "127.0.0.1:$DEAD,127.0.0.1:$PORT_2" -i "$(uid alice)" \
    connect "$ID" <"$WORK/msg" >"$WORK/a1.out" 2>"$WORK/a1.err"
check_rc "connect: dead first server" 0 $?
check "connect: registered event names the second server" \
    grep -q "\"event\":\"registered\".*\"server\":\"127.0.0.1:$PORT_2\"" "$WORK/a1.err"
check "connect: connected event names the second server" \
    grep -q "\"event\":\"connected\".*\"server\":\"127.0.0.1:$PORT_2\"" "$WORK/a1.err"
wait "$PID"
check_rc "listen: dead first server" 0 $?
same_file "dead first server: data" "$WORK/msg" "$WORK/b1.out"
check "listen: path line names the server" \
    grep -q "connected to .* (introduced by 127.0.0.1:$PORT_2): direct" "$WORK/b1.err"

# ---- listen on server 1, server 1 killed: registers on server 2 again, reached there ----
for sig in KILL TERM; do
    ID=$(uid "bob$sig")
    spawn 60 "$TCPUNCH" -s "127.0.0.1:$PORT_1,127.0.0.1:$PORT_2" -i "$ID" listen </dev/null \
        >"$WORK/b2.out" 2>"$WORK/b2.err"
    PID=$!
    wait_until 10 in_log 1 "$ID" || die "SIG$sig: listen never registered on server 1"
    sig 1 "$sig"
    wait "$PID_1" 2>/dev/null
    # the move is at once (0-0.5 s spread); 10 s bounds it with room for a loaded machine
    wait_until 10 in_log 2 "$ID" || die "SIG$sig: listen did not register on server 2 in 10 s"
    pass "SIG$sig on server 1: listen registered again on server 2"
    check "SIG$sig: it says so" grep -q "registered as $ID on 127.0.0.1:$PORT_2" "$WORK/b2.err"
    timeout -k 2 30 "$TCPUNCH" -s "127.0.0.1:$PORT_2" -i "$(uid alice)" connect "$ID" \
        <"$WORK/msg" >"$WORK/a2.out" 2>"$WORK/a2.err"
    check_rc "SIG$sig: connect via server 2" 0 $?
    wait "$PID"
    check_rc "SIG$sig: listen" 0 $?
    same_file "SIG$sig: data" "$WORK/msg" "$WORK/b2.out"
    start_rv 1 # for the next round (a new port)
done

# ---- round robin: server 2 then dies too, and listen goes back to server 1 ----
ID=$(uid carol)
spawn 60 "$TCPUNCH" -s "127.0.0.1:$PORT_2,127.0.0.1:$PORT_1" -i "$ID" listen </dev/null \
    >"$WORK/b3.out" 2>"$WORK/b3.err"
PID=$!
wait_until 10 in_log 2 "$ID" || die "listen never registered on server 2"
start_rv 3
sig 2 KILL
wait "$PID_2" 2>/dev/null
wait_until 10 in_log 1 "$ID" || die "listen did not move from server 2 to server 1 in 10 s"
pass "list order 2,1: server 2 killed, registered on server 1"
# server 1 dies as well: with nothing left, it waits (back-off), then takes server 1's successor
sig 1 KILL
wait "$PID_1" 2>/dev/null
sleep 1
check "nothing left: listen waits" kill -0 "$PID"
check "and says when it tries again" grep -q "reconnecting to the servers" "$WORK/b3.err"
kill "$PID" 2>/dev/null
wait "$PID" 2>/dev/null

# ---- a server that stops answering (keepalive timeout): listen moves on ----
start_rv 4 --keepalive 3
touch "$WORK/s4.log"
ID=$(uid dave)
spawn 60 "$TCPUNCH" -s "127.0.0.1:$PORT_4,127.0.0.1:$PORT_3" -i "$ID" listen </dev/null \
    >"$WORK/b4.out" 2>"$WORK/b4.err"
PID=$!
wait_until 10 in_log 4 "$ID" || die "listen never registered on server 4"
sig 4 STOP
# pings every 1 s; silence for 2 intervals + 5 s counts as lost
wait_until 15 in_log 3 "$ID" || die "listen did not leave a silent server in 15 s"
pass "silent server: listen registered on the next"
check "silent server: says it stopped answering" grep -q "stopped answering" "$WORK/b4.err"
sig 4 CONT
timeout -k 2 30 "$TCPUNCH" -s "127.0.0.1:$PORT_3" -i "$(uid alice)" connect "$ID" \
    <"$WORK/msg" >"$WORK/a4.out" 2>"$WORK/a4.err"
check_rc "silent server: connect via the next" 0 $?
wait "$PID"
check_rc "silent server: listen" 0 $?

# ---- a name with several addresses counts as several servers ----
if getent ahosts localhost | grep -q '^::1 ' && getent ahosts localhost | grep -q '^127\.0\.0\.1 '; then
    P6=$(free_port)
    timeout -k 2 60 "$RENDEZVOUS" -v -l "[::1]:$P6" >/dev/null 2>"$WORK/s6.log" &
    BG_PIDS+=($!)
    if wait_until 5 listening "$P6"; then
        timeout 20 "$TCPUNCH" -s "localhost:$P6" -i "$(uid erin)" connect nobody </dev/null \
            >/dev/null 2>"$WORK/name.err"
        check_rc "localhost:P, only [::1]:P up: reached it (peer not found)" 3 $?
        check "names the address used" grep -q "localhost:$P6 (\[::1\]:$P6)" "$WORK/name.err"
    else
        pass "SKIPPED (no IPv6 loopback listener): a name with several addresses"
    fi
else
    pass "SKIPPED (localhost is not both 127.0.0.1 and ::1 here): a name with several addresses"
fi

finish
