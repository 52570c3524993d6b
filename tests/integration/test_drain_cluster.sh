#!/usr/bin/env bash
# Draining one instance of a cluster (issue 16, "a drained server's peers are all registered
# elsewhere before it exits"): a real Redis on a free loopback port, instances A (--drain 10)
# and B; N listens with --server A,B all registered on A. SIGTERM to A: every one of the N is
# registered on B while A still runs, the goodbyes spread over time (not one burst), A exits
# 0, and a connect through B reaches one of them. Skipped (77) without redis-server or
# --redis. Every wait is bounded.
source "$(dirname "$0")/lib.sh"

if ! "$RENDEZVOUS" --help 2>/dev/null | grep -q -- --redis; then
    echo "SKIPPED: server built without cluster support (no --redis)"
    exit 77
fi
if ! command -v redis-server >/dev/null; then
    echo "SKIPPED: redis-server is not installed"
    exit 77
fi

N=8

RPORT=$(free_port) || die "no free port"
timeout -k 2 150 redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no \
    >"$WORK/redis.log" 2>&1 &
BG_PIDS+=($!)
wait_until 5 listening "$RPORT" || die "redis-server does not listen on 127.0.0.1:$RPORT"
head -c 32 /dev/urandom >"$WORK/cluster.secret"

# start_instance NAME [FLAGS]: sets PORT_NAME and PID_NAME (its `timeout`); logs to NAME.log
start_instance() {
    local n=$1 p
    shift
    p=$(free_port) || die "no free port"
    timeout -k 2 150 "$RENDEZVOUS" -v -l "127.0.0.1:$p" --redis "127.0.0.1:$RPORT" \
        --public-address "127.0.0.1:$p" --redis-prefix "tptest$$:" --cluster-ttl 3 \
        --cluster-secret-file "$WORK/cluster.secret" --max-per-ip 0 --rate-per-ip 0 \
        --connect-rate 0 "$@" >/dev/null 2>>"$WORK/$n.log" &
    printf -v "PID_$n" %s $!
    BG_PIDS+=($!)
    wait_until 5 listening "$p" || die "instance $n does not listen on 127.0.0.1:$p"
    printf -v "PORT_$n" %s "$p"
}

reg_on() { # NAME ID: instance NAME logged the registration of ID
    grep -q -F -- "register $2 from" "$WORK/$1.log"
}

all_on() { # NAME: every listen is registered on NAME
    local id
    for id in "${IDS[@]}"; do
        reg_on "$1" "$id" || return 1
    done
}

start_instance A --drain 10
start_instance B
A_SRV=$(under_timeout "$PID_A")
LIST=127.0.0.1:$PORT_A,127.0.0.1:$PORT_B

IDS=()
for i in $(seq 1 "$N"); do
    id=$(uid "drained$i")
    IDS+=("$id")
    spawn 90 "$TCPUNCH" -s "$LIST" -i "$id" listen </dev/null >"$WORK/l$i.out" 2>"$WORK/l$i.err"
done
wait_until 15 all_on A || die "not all $N listens registered on A"
pass "$N listens registered on A"

kill -TERM "$A_SRV"
alive_when_all_on_b=no
for ((t = 0; t < 300; t++)); do # 15 s at most
    if all_on B; then
        kill -0 "$A_SRV" 2>/dev/null && alive_when_all_on_b=yes
        break
    fi
    sleep 0.05
done
check "every one of the $N is registered on B" all_on B
if [ "$alive_when_all_on_b" = yes ]; then
    pass "A was still running when the last of them had registered on B"
else
    fail "A had exited before all $N were registered on B"
fi
wait "$PID_A"
check_rc "the drained instance A" 0 $?
check "A logged its drain" grep -q "drain (SIGTERM): $N registered peers told to go" "$WORK/A.log"
check "A finished its drain" grep -q "drain: done after" "$WORK/A.log"

# the goodbyes were spread: the re-registrations on B span some time, not one instant
ms_of() { # ISO timestamp → ms of the day
    local t=${1#*T}
    t=${t%Z}
    awk -F: -v t="$t" 'BEGIN { split(t, a, ":"); printf "%d\n", (a[1] * 3600 + a[2] * 60 + a[3]) * 1000 }'
}
first=$(grep -h "register drained" "$WORK/B.log" | head -n 1 | cut -d' ' -f1)
last=$(grep -h "register drained" "$WORK/B.log" | tail -n 1 | cut -d' ' -f1)
span=$(($(ms_of "$last") - $(ms_of "$first")))
if [ "$span" -ge 1000 ]; then
    pass "the $N arrived on B over $span ms (spread, no thundering herd)"
else
    fail "the $N arrived on B within $span ms (want the goodbyes spread over >= 1 s)"
fi

# and they are reachable there
printf 'through B after the drain\n' >"$WORK/msg"
rc=3
for try in 1 2 3 4 5; do # the directory learns of the registration asynchronously
    timeout -k 2 30 "$TCPUNCH" -s "127.0.0.1:$PORT_B" -i "$(uid asker)" connect "${IDS[0]}" \
        <"$WORK/msg" >"$WORK/a.out" 2>"$WORK/a.err"
    rc=$?
    [ "$rc" = 3 ] || break
    sleep 0.2
done
check_rc "connect through B to a drained listen" 0 "$rc"
wait_until 10 test -s "$WORK/l1.out" || true
same_file "data through B" "$WORK/msg" "$WORK/l1.out"

finish
