#!/bin/bash
# Wormhole codes across a cluster (PROTOCOL.md 20.5, "In a cluster"): a maker on instance A and
# claimers on instance B complete exchanges through A's mailbox over the bus (code-claimed
# carries the maker's post byte for byte, answer and confirm cross unchanged); one claim only,
# also for two claimers racing on two instances; aborts and disconnects across instances; the
# directory keys in Redis (expiry, release, no number handed out twice while live); forged
# `code` bus messages (another secret, a stale t) refused; Redis down: opens and remote claims
# refused with `overloaded`, a claim on the maker's own instance goes on. A real redis-server
# on loopback; raw mailbox clients (code_cluster.py).
source "$(dirname "$0")/lib.sh" "$@"
command -v redis-server >/dev/null || {
    echo "SKIPPED: redis-server is not installed" >&2
    exit 77
}
source "$TESTDIR/cluster_lib.sh"
DRIVER=$TESTDIR/code_cluster.py
PFX=tcpunch:

start_redis
# the tests open and claim many codes from a few loopback addresses: the per-source rate is
# not what they test on A and B (distinct uses many sources for the 4-per-source cap)
start_inst A --code-rate 100000 --new-ids-per-hour 0
start_inst B --code-rate 100000 --new-ids-per-hour 0
start_inst C --code-rate 5 --new-ids-per-hour 0 # its limits are what "limits" tests
wait_until 5 inst_joined A || die "instance A did not join"
wait_until 5 inst_joined B || die "instance B did not join"
wait_until 5 inst_joined C || die "instance C did not join"

run() { # SCENARIO
    local out=$WORK/$1.out
    timeout -k 2 60 python3 "$DRIVER" "$1" "$REDIS_PORT" "$PFX" "$CLUSTER_SECRET" \
        "A=${INST_PORT[A]}" "B=${INST_PORT[B]}" "C=${INST_PORT[C]}" >"$out" 2>&1
    local rc=$?
    cat "$out"
    check "scenario $1 (exit $rc)" [ "$rc" = 0 ]
}

# CODE_CLUSTER_ONLY="abort distinct": only those (to check that each fails without its code)
want() { [ -z "${CODE_CLUSTER_ONLY:-}" ] || [[ " $CODE_CLUSTER_ONLY " == *" $1 "* ]]; }
for s in exchange race abort gone expiry distinct; do
    want "$s" && run "$s"
done
if want forged; then
    mark=$(inst_mark A)
    run forged
    check "A logged the claim signed with another secret" inst_says A "$mark" "rejected: bad MAC"
    check "A logged the stale claim" inst_says A "$mark" "rejected: from B: stamped -[0-9]+ ms from now"
fi
if want insider; then
    mark=$(inst_mark B)
    run insider
    check "B logged the lines from an instance its claim did not go to" \
        inst_says B "$mark" "rejected: from X: a code message for claim ref [0-9]+ \\(channel [0-9]+\\), which went to A"
    check "B logged the second code-claimed" \
        inst_says B "$mark" "rejected: from A: code-claimed for code channel [0-9]+ out of turn"
    check "B logged the error no mailbox sends" inst_says B "$mark" \
        "rejected: from A: a code message for channel [0-9]+: error internal is not for the claimer"
fi
want limits && run limits
want outage && run outage

check "the instances are still running" kill -0 "${INST_PID[A]}" "${INST_PID[B]}" "${INST_PID[C]}"
finish
