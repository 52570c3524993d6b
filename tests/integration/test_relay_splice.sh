#!/bin/bash
# The relay's splice(2) path (relay_splice.py): bytes intact both ways, half-close either way,
# a reset mid-stream, a receiver that never reads (sender blocked, RSS flat, no CPU spent
# waiting), the byte and rate caps and the idle cut on spliced sessions, pipes given back,
# sessions that copy once descriptors run short, and (with strace) that splice is what moves
# the bytes, and never with --relay-copy.
source "$(dirname "$0")/lib.sh" "$@"
[ "${TCPUNCH_TEST_RELAY_COPY:-0}" = 1 ] && { echo "SKIPPED: the splice path's own test" >&2; exit 77; }

sp() { # MODE SERVER-FLAGS...
    local mode=$1 mark
    shift
    start_server "$@"
    mark=$(log_mark)
    timeout -k 2 120 python3 "$TESTDIR/relay_splice.py" "$mode" 127.0.0.1 "$SERVER_PORT" "$SERVER_PID"
    check_rc "relay_splice.py $mode (server $*)" 0 $?
    check "the server survived relay_splice.py $mode" server_alive
    SP_LOG=$(log_since "$mark")
}
logged() { grep -q -E -- "$1" <<<"$SP_LOG"; }

sp data --relay-bytes 0
check "the sessions were spliced in the kernel" logged "splicing in the kernel \(zero copy\)"
check "none was copied" bash -c "! grep -q 'copying through user space' <<<\"\$1\"" _ "$SP_LOG"
check "the reset mid-stream was logged as one" logged "ended \(reset\).*(reset|Connection)"
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null

sp bytes --relay-bytes 1M
check "the byte cap cut a spliced session" logged "ended \(reset\).*byte limit reached"
cut=$(grep -o -E -- "-> sb-[0-9-]+ [0-9]+ bytes" <<<"$SP_LOG" | awk '{ print $3 }' | sort -n | tail -1)
check "the cut session counted no byte past the cap (${cut:-?} of 1048576)" test "${cut:-9999999}" -le 1048576
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null
sp rate --relay-rate 1M
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null
sp idle --relay-idle 2
check "the idle cut ended a spliced session" logged "ended \(reset\).*idle limit reached"
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null

# a soft limit of 100 descriptors: the first sessions splice, the later ones copy before the
# pipes would eat the reserve kept for accepts (RLY_FD_RESERVE)
if command -v prlimit >/dev/null; then
    start_server --relay-max 40 --relay-per-peer 0 --relay-per-ip 0 --new-ids-per-hour 0
    prlimit --pid "$(under_timeout "$SERVER_PID")" --nofile=100: ||
        fail "prlimit on the server"
    mark=$(log_mark)
    timeout -k 2 120 python3 "$TESTDIR/relay_splice.py" fdlimit 127.0.0.1 "$SERVER_PORT" "$SERVER_PID"
    check_rc "relay_splice.py fdlimit (soft limit 100 descriptors)" 0 $?
    SP_LOG=$(log_since "$mark")
    check "under the limit sessions splice" logged "splicing in the kernel"
    check "near it they copy, keeping the reserve" logged "copying through user space \(no pipe: fewer than"
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null
else
    echo "SKIPPED: descriptor-limit case (no prlimit)" >&2
fi

# at start: a warning when --relay-max spliced sessions would not fit the descriptor limit
port=$(free_port) || die "no free port"
(ulimit -Sn 200; timeout -k 1 1 "$RENDEZVOUS" -l "127.0.0.1:$port" --relay-max 40) 2>"$WORK/budget.err"
check "a --relay-max beyond the descriptor limit is warned about at start" \
    grep -q "relay-max 40 spliced sessions need up to 304 descriptors, the limit is 200" "$WORK/budget.err"

# which system calls move the bytes: splice, and none with --relay-copy
strace_count() { # SERVER-FLAGS...: splice calls while 8 MiB cross the relay
    local out=$WORK/strace.out st
    start_server "$@"
    strace -qq -f -e trace=splice -o "$out" -p "$(under_timeout "$SERVER_PID")" 2>"$WORK/strace.err" &
    st=$!
    BG_PIDS+=($st)
    sleep 0.5
    RELAY_BENCH_SIZE=$((8 << 20)) timeout -k 2 60 python3 "$TESTDIR/relay_splice.py" bench \
        127.0.0.1 "$SERVER_PORT" "$SERVER_PID" >/dev/null || fail "8 MiB through the relay ($*)"
    sleep 0.3
    kill "$st"; wait "$st" 2>/dev/null
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null
    grep -c "^[0-9]* *splice(" "$out" 2>/dev/null || true
}
if command -v strace >/dev/null && strace -qq -e trace=none true 2>/dev/null; then
    n=$(strace_count)
    check "strace: the splice path moves the bytes with splice(2) ($n calls)" test "$n" -ge 100
    n=$(strace_count --relay-copy)
    check "strace: --relay-copy makes no splice(2) call ($n)" test "$n" -eq 0
else
    echo "SKIPPED: strace case (strace missing or not allowed to trace)" >&2
fi
finish
