#!/usr/bin/env bash
# A stranger who knows a waiting peer's id must not keep the real peer out by filling its setup
# slots. starve.py registers one id and orders a punch to the victim 5 times a second, never
# dialling; each order used to take one of the 8 slots until the victim's --timeout, so the
# real peer's order found them all taken ("8 are being set up already") every time.
#   receive --from alice=KEY: the stranger is not named, so it must take no slot at all; alice's
#     send goes through at the first try, and the stranger is never recorded in known_peers.
#   chat (no pin): one id holds at most 2 slots; alice's chat goes through within 3 tries.
source "$(dirname "$0")/lib.sh" "$@"
S=$(uid starver)

# starve TARGET TAG: the stranger, 5 orders a second for 25 s; waits until it has ordered some
starve() {
    spawn 40 python3 "$ADV/starve.py" "$SERVER_PORT" "$S" "$1" 5 25 >"$WORK/$2.out" 2>&1
    STARVE_PID=$!
    wait_until 10 grep -qs welcome "$WORK/$2.out" || fail "the stranger did not register"
    sleep 3 # 15 orders: more than the 8 slots
}

# ---- receive --from alice=KEY ----
R=$(uid recv)
mkdir -p "$WORK/dst" "$WORK/src"
head -c 50000 /dev/urandom >"$WORK/src/photo.bin"
# (a binary without --from takes files from anyone: the starving works on it all the same)
FROM=()
"$TCPUNCH_BIN" --help | grep -q -- "--from" && FROM=(--from "$A=$KEY_A")
start_receive_victim 5 "${FROM[@]}"
starve "$R" st1
alice_sends
check_rc "receive: alice's send while the stranger orders 5 punches a second" 0 $?
receive_victim_done
check "receive: no session was set up for the stranger" \
    bash -c "! grep -q 'punching to $S' '$WORK/r.err'"
check "receive: the stranger is not in known_peers" \
    bash -c "! grep -qs '^$S ' '$WORK/home/$R/known_peers'"
kill "$STARVE_PID" 2>/dev/null
wait "$STARVE_PID" 2>/dev/null

# ---- chat, no pin ----
start_chat_victim 5
starve "$H" st2
rc=1
for try in 1 2 3; do
    alice_chats
    rc=$?
    [ "$rc" -eq 0 ] && break
done
check_rc "chat: alice gets through within 3 tries while the stranger orders 5 a second" 0 "$rc"
check "chat: the stranger never held more than 2 slots (it was churned, not refused)" \
    bash -c "! grep -q 'being set up already' '$WORK/h.err'"
chat_victim_done
kill "$STARVE_PID" 2>/dev/null
finish
