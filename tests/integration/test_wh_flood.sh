#!/bin/bash
# A flood of channel allocations (and of claims) is rate limited per source address, and the
# mailbox stays responsive for a legitimate maker from another address (docs/design/wormhole.md
# 6.2: at most 4 open channels per source, WH_PER_SOURCE; --code-rate 20 opens+claims a minute,
# burst 10). The flooders (whguess.py flood) come from 127.0.0.2 (code-open, one main
# registration each) and 127.0.0.3 (code-claim of random channels, one auxiliary registration),
# each bounded in count (40, 60) and time (10 s); they hold their connections (and channels)
# while a real `send FILE` / `receive CODE` pair from 127.0.0.1 moves a file.
# WH_SERVER_ARGS: extra server options (e.g. "--code-rate 100000" to see this test fail).
source "$(dirname "$0")/lib.sh" "$@"
source "$TESTDIR/wh.sh"

# shellcheck disable=SC2086  # WH_SERVER_ARGS: words on purpose
start_server ${WH_SERVER_ARGS:-}
SRV=127.0.0.1:$SERVER_PORT
GUESS=$TESTDIR/whguess.py
mkdir -p "$WORK/dst"
head -c $((256 * 1024)) /dev/urandom >"$WORK/data.bin"

spawn 40 python3 "$GUESS" flood "$SERVER_PORT" open 127.0.0.2 40 10 "$WORK/open.json" --lifetime 30 \
    >"$WORK/open.log" 2>&1
spawn 40 python3 "$GUESS" flood "$SERVER_PORT" claim 127.0.0.3 60 10 "$WORK/claim.json" --lifetime 30 \
    >"$WORK/claim.log" 2>&1
wait_until 15 test -s "$WORK/open.json" || die "the open flood did not finish within 15 s"
wait_until 15 test -s "$WORK/claim.json" || die "the claim flood did not finish within 15 s"
pass "open flood from 127.0.0.2: $(cat "$WORK/open.json")"
pass "claim flood from 127.0.0.3: $(cat "$WORK/claim.json")"

jq_num() { # FILE EXPR: a number from a flood result (0 when absent)
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); v=eval(sys.argv[2], {}, r); print(int(v or 0))' "$1" "$2"
}
opened=$(jq_num "$WORK/open.json" 'counts.get("opened")')
olimited=$(jq_num "$WORK/open.json" 'counts.get("rate-limited")')
ocut=$(jq_num "$WORK/open.json" 'cut')
ofirst=$(jq_num "$WORK/open.json" 'first_limited')
check "at least one channel opened for the flooder (the mailbox works: $opened)" test "$opened" -ge 1
check "at most 4 channels open for one source ($opened)" test "$opened" -le 4
check "the rest refused rate-limited or cut ($olimited rate-limited, $ocut cut, of 40)" \
    test $((opened + olimited + ocut)) -ge 36 -a "$olimited" -ge 1
check "the first refusal by the 5th open (it was open number $ofirst)" test "$ofirst" -ge 1 -a "$ofirst" -le 5

unknown=$(jq_num "$WORK/claim.json" 'counts.get("code-unknown")')
climited=$(jq_num "$WORK/claim.json" 'counts.get("rate-limited")')
ccut=$(jq_num "$WORK/claim.json" 'cut')
cfirst=$(jq_num "$WORK/claim.json" 'first_limited')
check "claims of random channels: code-unknown at first ($unknown)" test "$unknown" -ge 1
check "at most a burst of 10 (+1) claims answered ($unknown)" test "$unknown" -le 11
check "the claim flood was limited ($climited rate-limited, $ccut cut; first at $cfirst)" \
    test "$climited" -ge 1 -a "$cfirst" -ge 1 -a "$cfirst" -le 12

# the legitimate pair from 127.0.0.1 while the flooders hold their connections
check "the flooders still hold their connections" bash -c "kill -0 ${BG_PIDS[1]} && kill -0 ${BG_PIDS[2]}"
t0=$(date +%s%N)
wh_maker s 40 -s "$SRV" -i "$(uid maker)" send "$WORK/data.bin"
timeout -k 2 30 "$TCPUNCH" -s "$SRV" -i "$(uid taker)" receive "$CODE" --dir "$WORK/dst" \
    >/dev/null 2>"$WORK/r.err"
RC_R=$?
wh_wait "$MAKER_PID" 20
RC_S=$?
ms=$((($(date +%s%N) - t0) / 1000000))
check_rc "a legitimate maker from another address during the flood" 0 "$RC_S"
check_rc "its receiver" 0 "$RC_R"
same_file "the file during the flood" "$WORK/data.bin" "$WORK/dst/data.bin"
check "the exchange took $ms ms (under 10 s)" test "$ms" -lt 10000
check "the server is alive" server_alive
if grep -q 'rate' "$SERVER_LOG"; then
    pass "the server logged the limit: $(grep -m1 'rate' "$SERVER_LOG" | cut -c1-140)"
fi

finish
