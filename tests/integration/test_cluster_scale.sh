#!/bin/bash
# What each peer costs Redis, the cluster's one shared process (BENCHMARKS.md "100,000 peers").
#
# The claim of a registration: its 1.4 KB script is cached in Redis (SCRIPT LOAD when the
# connection opens) and sent by SHA; it was sent whole with every registration, and Redis
# hashed it each time. 300 registrations are 300 EVALSHA, next to no EVAL; after SCRIPT FLUSH
# (an operator, a failover to a replica without the script) a claim answered NOSCRIPT is sent
# again whole and the script loaded again: 20 more peers all register.
#
# The directory refresh (spread over half its interval, one script per 128 entries, on a
# connection of its own): every ttl/3 s an instance renews the entries of all its peers.
# That sweep was one Redis command per peer (100,000 commands every 10 s at 100,000 peers, and
# one instance's sweep queued ahead of the claims of new registrations until they timed out,
# BENCHMARKS.md "100,000 peers"). Now one script renews CL_REFRESH_BATCH (128) entries:
# 300 peers on one instance with a 3 s TTL (a sweep each second), over 4.5 s: the entries all
# live on past their TTL, one entry taken by another instance is left to it, and the EVAL
# commands Redis ran are a few per sweep (3 batches), not 300.
#   test_cluster_scale.sh TCPUNCH RENDEZVOUS LOADGEN
source "$(dirname "$0")/lib.sh" "$@"
source "$TESTDIR/cluster_lib.sh"

LOADGEN=${3:?usage: test_cluster_scale.sh TCPUNCH RENDEZVOUS LOADGEN}
command -v redis-cli >/dev/null || {
    echo "SKIPPED: redis-cli is not installed"
    exit 77
}
rcli() { timeout 5 redis-cli -p "$REDIS_PORT" "$@"; }
calls() { # COMMAND: how many Redis has run (0: none yet, so no line)
    local v
    v=$(rcli INFO commandstats | tr -d '\r' | sed -n "s/^cmdstat_$1:calls=\([0-9]*\),.*/\1/p")
    echo "${v:-0}"
}
evals() { calls eval; }
entries() { rcli --scan --pattern 'rf:peer:*' | wc -l; }

N=300
start_redis
start_inst A --redis-prefix rf: --max-peers 1000 --ids-per-key 0 --new-ids-per-hour 0
wait_until 5 inst_joined A || die "instance A did not join the cluster"

# the peers stay registered until the load generator is told to go on (it never is: killed)
mkdir "$WORK/sync"
spawn 60 "$LOADGEN" -s "127.0.0.1:${INST_PORT[A]}" -n "$N" -i 1 --sync "$WORK/sync" -t 50 \
    >"$WORK/lg.out" 2>"$WORK/lg.err"
LG_PID=$!
wait_until 20 test -e "$WORK/sync/ready.0" || die "the load generator did not register $N peers"
wait_until 5 sh -c "[ \"\$(timeout 5 redis-cli -p $REDIS_PORT --scan --pattern 'rf:peer:*' | wc -l)\" = $N ]" ||
    die "the directory does not hold $N entries"
pass "$N peers registered, $N directory entries"
sha=$(calls evalsha)
check "the $N claims went by SHA (EVALSHA $sha)" test "$sha" -ge "$N"
check "and not whole (EVAL $(evals))" test "$(evals)" -lt 30

rcli SET rf:peer:lg0000007 other EX 60 >/dev/null
before=$(evals)
sleep 4.5
after=$(evals)
got=$(entries)
check "all $N entries outlived their 3 s TTL (got $got)" test "$got" = "$N"
check "the entry another instance took stays its own" \
    test "$(rcli GET rf:peer:lg0000007)" = other
d=$((after - before))
# 4-5 sweeps of 3 batches each; one EVAL per peer made 1,200-1,500
check "the sweeps took $d EVAL commands for $N peers (at most 30)" test "$d" -le 30
check "the load generator is still holding its peers" kill -0 "$LG_PID"

mark=$(inst_mark A)
rcli SCRIPT FLUSH >/dev/null
mkdir "$WORK/sync2"
spawn 60 "$LOADGEN" -s "127.0.0.1:${INST_PORT[A]}" -n 20 -i 1 --base 1000 --sync "$WORK/sync2" \
    -t 50 >"$WORK/lg2.out" 2>"$WORK/lg2.err"
LG2_PID=$!
wait_until 20 test -e "$WORK/sync2/ready.1000" || die "the second load generator did not finish registering"
check "after SCRIPT FLUSH: 20 of 20 registered ($(wc -l <"$WORK/sync2/ready.1000"))" \
    test "$(wc -l <"$WORK/sync2/ready.1000")" = 20
check "the instance loaded the script again" inst_says A "$mark" "forgot the claim script"
kill "$LG_PID" "$LG2_PID" 2>/dev/null
wait "$LG_PID" "$LG2_PID" 2>/dev/null
# the peers left: their entries are withdrawn, and a refresh spread over ticks (which took its
# list of ids when it began) sets none of them again; only the other instance's entry is left
sleep 2.5
got=$(entries)
check "the $((N + 20)) peers left: 1 entry left, not set again by a sweep (got $got)" test "$got" = 1
finish
