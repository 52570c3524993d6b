#!/bin/bash
# One client must not hold every relay slot (Phase 7, issue 12). Attack: two ids of one key
# (then more keys from the same address) take relayed session after relayed session and keep
# them idle, so that --relay-max is theirs. Defence: --relay-per-peer (4 per id and per key)
# and --relay-per-ip (8 per source address) cap the sessions at the join and at the offer (an
# introduction beyond still happens, direct only, its punch saying why); an honest pair from
# another address is still relayed; --relay-idle cuts a session that carries no byte.
source "$(dirname "$0")/../integration/lib.sh" "$@"
QUOTA=$(dirname "$0")/quota.py

start_server
timeout -k 2 90 python3 "$QUOTA" hog 127.0.0.1 "$SERVER_PORT"
check_rc "quota.py hog (default relay quotas)" 0 $?
check "the refused join is logged with its reason" grep -q "relay-per-peer" "$SERVER_LOG"
check "the introduction without relay is logged" grep -q -E "no relay, direct only: .*relay-per-peer" "$SERVER_LOG"
check "the server survived" server_alive
kill "$SERVER_PID" 2>/dev/null

start_server --relay-idle 2
timeout -k 2 60 python3 "$QUOTA" idle 127.0.0.1 "$SERVER_PORT"
check_rc "quota.py idle (--relay-idle 2)" 0 $?
check "the idle cut is logged" grep -q -E "ended \(reset\).*--relay-idle" "$SERVER_LOG"
check "the server survived" server_alive
finish
