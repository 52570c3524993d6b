#!/bin/bash
# Wormhole codes across a cluster (PROTOCOL.md 20.5, "In a cluster"): a maker on instance A and
# claimers on instance B complete exchanges through A's mailbox over the bus (code-claimed
# carries the maker's post byte for byte, answer and confirm cross unchanged); one claim only,
# also for two claimers racing on two instances; aborts and disconnects across instances; the
# directory keys in Redis (expiry, release, no number handed out twice while live); forged
# `code` bus messages (another secret, a stale t) refused; Redis down: opens and remote claims
# refused with `overloaded`, a claim on the maker's own instance goes on; the maker's instance
# killed: a claim of its code is code-unknown at once; Redis slow to take writes: the late
# reservation is given back. A real redis-server
# on loopback; raw mailbox clients (code_cluster.py), and the real peers when they make codes.
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
LIVE=(A B C)

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
want slow && run slow
want limits && run limits
if want crash; then # C dies holding a channel (SIGKILL: no goodbye, its keys stay)
    export CODE_CLUSTER_SYNC=$WORK/crash.sync
    timeout -k 2 60 python3 "$DRIVER" crash "$REDIS_PORT" "$PFX" "$CLUSTER_SECRET" \
        "A=${INST_PORT[A]}" "B=${INST_PORT[B]}" "C=${INST_PORT[C]}" >"$WORK/crash.out" 2>&1 &
    pid_py=$!
    wait_until 10 grep -q '^CHANNEL ' "$WORK/crash.out" || die "crash: no channel opened on C"
    for p in $(pgrep -P "${INST_PID[C]}"); do kill -KILL "$p"; done
    wait "${INST_PID[C]}" 2>/dev/null
    touch "$CODE_CLUSTER_SYNC"
    wait "$pid_py"
    rc=$?
    cat "$WORK/crash.out"
    check "scenario crash (exit $rc)" [ "$rc" = 0 ]
    LIVE=(A B) # C is gone
fi

# ---- the real peers across the cluster: send on A, receive on B (the PAKE through A's
# mailbox, then the punch as any introduction across instances); a wrong code typed on B
# burns the code on A. Needs the peers' side of codes (tcpunch --code-words).
has_code() { grep -q '^Code: ' "$1"; }
wait_code() { # FILE: the maker's "Code: ..." line; sets CODE
    CODE=
    wait_until 10 has_code "$1" || return 1
    CODE=$(sed -n 's/^Code: //p' "$1" | head -n 1)
}
if ! want peers; then
    :
elif ! "$TCPUNCH" --help 2>&1 | grep -q -- --code-words; then
    echo "note: this tcpunch makes no codes (the peers' side is another branch): peers not run"
else
    mkdir -p "$WORK/src" "$WORK/dst"
    head -c $((1024 * 1024)) /dev/urandom >"$WORK/src/file.bin"
    MK=$(uid maker) CK=$(uid claimer)
    (cd "$WORK/src" && exec timeout -k 2 60 "$TCPUNCH" -s "127.0.0.1:${INST_PORT[A]}" -i "$MK" \
        send file.bin) >/dev/null 2>"$WORK/pm.err" &
    pid_m=$!
    BG_PIDS+=($pid_m)
    wait_code "$WORK/pm.err" || die "the maker on A printed no Code: line"
    timeout -k 2 60 "$TCPUNCH" -s "127.0.0.1:${INST_PORT[B]}" -i "$CK" --dir "$WORK/dst" \
        receive "$CODE" >/dev/null 2>"$WORK/pc.err"
    check_rc "receive on B of a code made on A" 0 $?
    wait "$pid_m"
    check_rc "send on A" 0 $?
    same_file "the file arrived on B's side intact" "$WORK/src/file.bin" "$WORK/dst/file.bin"
    # a wrong code: both sides 12, and the right one is no code any more
    MK=$(uid wmaker) CK=$(uid wclaimer)
    spawn 60 "$TCPUNCH" -s "127.0.0.1:${INST_PORT[A]}" -i "$MK" send --code "$WORK/src/file.bin" \
        >/dev/null 2>"$WORK/wm.err"
    pid_m=$!
    wait_code "$WORK/wm.err" || die "the maker on A printed no Code: line"
    last=${CODE##*-}
    other=$(grep -v '^#' "$TESTDIR/../../proto/words.txt" | grep -vx "$last" | head -n 1)
    timeout -k 2 30 "$TCPUNCH" -s "127.0.0.1:${INST_PORT[B]}" -i "$CK" --dir "$WORK/dst" \
        receive "${CODE%-*}-$other" >/dev/null 2>"$WORK/wc.err"
    check_rc "receive on B with a wrong code" 12 $?
    wait "$pid_m"
    check_rc "the maker on A of the code typed wrong" 12 $?
    timeout -k 2 30 "$TCPUNCH" -s "127.0.0.1:${INST_PORT[B]}" -i "$CK" --dir "$WORK/dst" \
        receive "$CODE" >/dev/null 2>"$WORK/wc2.err"
    check_rc "the right code after the wrong one, on B" 13 $?
fi
want outage && run outage
# the figures of BENCHMARKS.md, "Codes across instances" (only when asked for by name)
[[ " ${CODE_CLUSTER_ONLY:-} " == *" latency "* ]] && run latency

pids=()
for n in "${LIVE[@]}"; do pids+=("${INST_PID[$n]}"); done
check "the instances are still running (${LIVE[*]})" kill -0 "${pids[@]}"
finish
