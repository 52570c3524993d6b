#!/bin/bash
# The cluster's metrics: an introduction across two instances counts as introduce out on the
# initiator's instance and introduce in (plus the path decision) on the target's; Redis's round
# trip is measured; a Redis outage shows as tcpunch_cluster_redis_up 1 -> 0 -> 1 (redis-server
# killed by PID, then started again on the same port).
source "$(dirname "$0")/lib.sh" "$@"
source "$TESTDIR/cluster_lib.sh"

command -v curl >/dev/null || {
    echo "SKIPPED: curl is not installed"
    exit 77
}

# metric INST 'NAME{LABELS}': the value on INST's metrics port now
metric() {
    curl -s --max-time 5 "http://127.0.0.1:${MX[$1]}/metrics" |
        awk -v k="$2" '$1 == k { print $2; exit }'
}
is() { # INST NAME VALUE
    [ "$(metric "$1" "$2")" = "$3" ]
}

declare -A MX
head -c 65536 /dev/urandom >"$WORK/a.in"
head -c 65536 /dev/urandom >"$WORK/b.in"
start_redis
for i in A B; do
    MX[$i]=$(free_port) || die "no free port"
    start_inst "$i" --metrics-listen "127.0.0.1:${MX[$i]}"
done
for i in A B; do
    wait_until 5 inst_joined "$i" || die "instance $i did not join the cluster"
    wait_until 5 listening "${MX[$i]}" || die "instance $i's metrics port does not listen"
done

for i in A B; do
    check "$i: Redis up" wait_until 5 is "$i" tcpunch_cluster_redis_up 1
done
# the PING every CL_PING_MS gives a round trip: a small positive number of seconds
rtt_ok() {
    awk -v v="$(metric A tcpunch_cluster_redis_rtt_seconds)" 'BEGIN { exit !(v > 0 && v < 1) }'
}
check "A: Redis round trip measured" wait_until 10 rtt_ok

out0=$(metric A 'tcpunch_cluster_introductions_total{direction="out"}')
in0=$(metric B 'tcpunch_cluster_introductions_total{direction="in"}')
direct0=$(metric B 'tcpunch_introductions_total{path="direct"}')
cross_pair A B "a pair across instances"
check "A: one introduce out ($out0 -> $(metric A 'tcpunch_cluster_introductions_total{direction="out"}'))" \
    is A 'tcpunch_cluster_introductions_total{direction="out"}' $((out0 + 1))
check "B: one introduce in" is B 'tcpunch_cluster_introductions_total{direction="in"}' $((in0 + 1))
check "B (the target's instance) planned it: one direct introduction" \
    is B 'tcpunch_introductions_total{path="direct"}' $((direct0 + 1))
check "A planned nothing itself" is A 'tcpunch_introductions_total{path="direct"}' 0
check "A: no introduce in" is A 'tcpunch_cluster_introductions_total{direction="in"}' 0

# ---- Redis goes down, then comes back on the same port
port=$REDIS_PORT
stop_redis
for i in A B; do
    check "$i: Redis down shows as tcpunch_cluster_redis_up 0" \
        wait_until 15 is "$i" tcpunch_cluster_redis_up 0
done
check "A's /healthz stays 200 during the outage (it still serves its peers)" \
    test "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${MX[A]}/healthz")" = 200
start_redis "$port"
for i in A B; do
    check "$i: Redis back shows as tcpunch_cluster_redis_up 1" \
        wait_until 20 is "$i" tcpunch_cluster_redis_up 1
done

finish
