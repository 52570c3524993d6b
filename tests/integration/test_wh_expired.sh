#!/bin/bash
# An expired wormhole code is refused (docs/design/wormhole.md 6.2, 6.3): a server with
# --code-ttl 10 (WH_CODE_TTL to change it, e.g. 600 to see this test fail); `send FILE` makes a
# code and nobody types it: within the ttl and a margin the maker says the code expired and
# exits 13; `receive CODE` after that: "no such code", exit 13, nothing received. And a maker
# whose code is claimed but never answered (a claimer that stalls): the exchange expires 30 s
# after the claim (code-expired to both), the maker exits 13, the claimer hears code-expired.
source "$(dirname "$0")/lib.sh" "$@"
source "$TESTDIR/wh.sh"

TTL=${WH_CODE_TTL:-10}
start_server --code-ttl "$TTL" --code-rate 0
SRV=127.0.0.1:$SERVER_PORT
M=$(uid maker)
R=$(uid late)
mkdir -p "$WORK/dst"
head -c 4096 /dev/urandom >"$WORK/data.bin"

t0=$(date +%s)
wh_maker s 60 -s "$SRV" -i "$M" send "$WORK/data.bin"
pass "the maker printed $CODE (server --code-ttl $TTL)"
wh_wait "$MAKER_PID" $((TTL + 8))
RC_S=$?
took=$(($(date +%s) - t0))
check_rc "the maker of a code nobody typed, after $took s" 13 "$RC_S"
check "it waited the ttl ($took s >= $TTL - 1)" test "$took" -ge $((TTL - 1))
wh_said "$WORK/s.err" "expired" "the maker says the code expired"
wh_not_connected "$WORK/s.err" "the maker of the expired code"

timeout -k 2 30 "$TCPUNCH" -s "$SRV" -i "$R" receive "$CODE" --dir "$WORK/dst" \
    >"$WORK/r.out" 2>"$WORK/r.err"
check_rc "receive of the expired code" 13 $?
wh_said "$WORK/r.err" "no such code|expired" "the receiver says the code is unknown or expired"
check "nothing arrived" test -z "$(ls -A "$WORK/dst")"

# a claim that never answers: the 30 s step deadline (WH_STEP_MS) ends it for both
wh_maker s2 70 -s "$SRV" -i "$M-2" send "$WORK/data.bin"
t0=$(date +%s)
timeout -k 2 60 python3 "$TESTDIR/whguess.py" claim "$SERVER_PORT" "$R-stall" \
    "$(wh_channel "$CODE")" stall "$WORK/stall.json" >"$WORK/stall.log" 2>&1 &
STALL=$!
BG_PIDS+=("$STALL")
wh_wait "$MAKER_PID" 45
RC_S=$?
took=$(($(date +%s) - t0))
check_rc "the maker of a claimed code nobody answered, after $took s" 13 "$RC_S"
check "it waited the step deadline ($took s >= 29)" test "$took" -ge 29
wh_said "$WORK/s2.err" "expired" "the maker says the exchange expired"
wh_wait "$STALL" 10
check "the stalled claimer heard code-expired" grep -q '"result": "error code-expired"' "$WORK/stall.json"

finish
