#!/usr/bin/env bash
# A cluster of three rendezvous instances sharing a real Redis (on a random loopback port, no
# persistence): a listener given all three registers on the first; that instance is killed; the
# listener registers its id on the next one, and a peer on the third instance reaches it there.
# Skipped (77) when the server has no --redis or redis-server is not installed. Every wait is
# bounded.
source "$(dirname "$0")/lib.sh"

if ! "$RENDEZVOUS" --help 2>/dev/null | grep -q -- --redis; then
    echo "SKIPPED: server built without cluster support (no --redis)"
    exit 77
fi
if ! command -v redis-server >/dev/null; then
    echo "SKIPPED: redis-server is not installed"
    exit 77
fi

# sig N SIGNAL: signals instance N itself (PID_N is its `timeout`, which cannot pass on KILL).
sig() {
    local t=PID_$1
    kill -"$2" "$(under_timeout "${!t}")"
}

in_log() { # N TEXT: instance N logged TEXT
    grep -q -F -- "$2" "$WORK/i$1.log"
}

RPORT=$(free_port) || die "no free port"
timeout -k 2 150 redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no \
    >"$WORK/redis.log" 2>&1 &
BG_PIDS+=($!)
wait_until 5 listening "$RPORT" || die "redis-server does not listen on 127.0.0.1:$RPORT"

head -c 32 /dev/urandom >"$WORK/cluster.secret"

# start_instance N: sets PORT_N and PID_N; logs to $WORK/iN.log
start_instance() {
    local n=$1 p
    p=$(free_port) || die "no free port"
    # a short directory TTL: the entries of a killed instance go within seconds
    timeout -k 2 150 "$RENDEZVOUS" -v -l "127.0.0.1:$p" --redis "127.0.0.1:$RPORT" \
        --public-address "127.0.0.1:$p" --redis-prefix "tptest$$:" --cluster-ttl 3 \
        --cluster-secret-file "$WORK/cluster.secret" --max-per-ip 0 --rate-per-ip 0 \
        --connect-rate 0 >/dev/null 2>>"$WORK/i$n.log" &
    printf -v "PID_$n" %s $!
    BG_PIDS+=($!)
    wait_until 5 listening "$p" || die "instance $n does not listen on 127.0.0.1:$p"
    printf -v "PORT_$n" %s "$p"
}
start_instance 1
start_instance 2
start_instance 3
LIST=127.0.0.1:$PORT_1,127.0.0.1:$PORT_2,127.0.0.1:$PORT_3
printf 'across the cluster\n' >"$WORK/msg"

# ---- across instances: a listener on instance 1, a peer on instance 3 ----
ID=$(uid bob)
spawn 60 "$TCPUNCH" -s "$LIST" -i "$ID" listen </dev/null >"$WORK/b1.out" 2>"$WORK/b1.err"
PID=$!
wait_until 10 in_log 1 "$ID" || die "listen never registered on instance 1"
for try in 1 2 3 4 5; do # the directory learns of the registration asynchronously
    timeout -k 2 30 "$TCPUNCH" -s "127.0.0.1:$PORT_3" -i "$(uid alice)" connect "$ID" \
        <"$WORK/msg" >"$WORK/a1.out" 2>"$WORK/a1.err"
    rc=$?
    [ "$rc" = 3 ] || break
    sleep 0.2
done
check_rc "instance 3 -> instance 1: connect" 0 "$rc"
wait "$PID"
check_rc "instance 3 -> instance 1: listen" 0 $?
same_file "instance 3 -> instance 1: data" "$WORK/msg" "$WORK/b1.out"

# ---- the listener's instance is killed: it registers on the next, reached from the third ----
ID=$(uid carol)
spawn 60 "$TCPUNCH" -s "$LIST" -i "$ID" listen </dev/null >"$WORK/b2.out" 2>"$WORK/b2.err"
PID=$!
wait_until 10 in_log 1 "$ID" || die "listen never registered on instance 1"
sig 1 KILL
wait "$PID_1" 2>/dev/null
wait_until 10 in_log 2 "$ID" || die "listen did not register on instance 2 within 10 s"
pass "instance 1 killed: listen registered its id on instance 2"
check "it says so" grep -q "registered as $ID on 127.0.0.1:$PORT_2" "$WORK/b2.err"
for try in 1 2 3 4 5 6 7 8 9 10; do # until the directory names instance 2 (at most the TTL)
    timeout -k 2 30 "$TCPUNCH" -s "127.0.0.1:$PORT_3" -i "$(uid alice)" connect "$ID" \
        <"$WORK/msg" >"$WORK/a2.out" 2>"$WORK/a2.err"
    rc=$?
    [ "$rc" = 3 ] || [ "$rc" = 4 ] || break
    sleep 0.5
done
check_rc "instance 3 -> instance 2 after the failover: connect" 0 "$rc"
wait "$PID"
check_rc "after the failover: listen" 0 $?
same_file "after the failover: data" "$WORK/msg" "$WORK/b2.out"

finish
