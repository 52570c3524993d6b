#!/usr/bin/env bash
# A stranger who knows the id must not end a waiting listen, receive or chat. Before, the first
# punch order won: a stranger's `connect` ended the victim (exit 4) whether its key was refused
# or it never dialled, and the real peer's order, arriving meanwhile, was ignored (exit 4 too).
#   listen --peer-key (alice's key): a real `tcpunch connect` as mallory (another identity),
#     then a raw stranger (stranger.py: registers, sends connect, never dials); then alice.
#   receive --from alice (where the binary has --from), with known_peers pinning carol:
#     mallory's `send` under the id carol (its own key), then a raw stranger that never dials,
#     and alice's send right behind it (both strangers are refused at the punch order: --from
#     does not name them; an older binary admits the raw one, whose session is then in setup).
#   chat (no pin at all): a raw stranger, and alice's chat right behind it.
# Each time the victim must still be waiting after the stranger, and the real peer's data
# must go through (both exit 0).
source "$(dirname "$0")/lib.sh" "$@"
M=$(uid mallory)

# raw_stranger TARGET TAG: a stranger.py that holds its connection 8 s; waits for its punch
raw_stranger() {
    spawn 15 python3 "$ADV/stranger.py" "$SERVER_PORT" "$(uid raw)" "$1" 8 "$WORK/$2.state"
    wait_until 10 grep -qs punched "$WORK/$2.state" ||
        fail "the raw stranger ($2) got no punch order ($(cat "$WORK/$2.state" 2>/dev/null))"
}

# ---- listen, pinned to alice with --peer-key ----
V=$(uid victim)
head -c 200000 /dev/urandom >"$WORK/a.in"
mark=$(log_mark)
spawn 60 "$TCPUNCH" -s "$SRV" -i "$V" -t 3 -v --peer-key "$KEY_A" listen </dev/null \
    >"$WORK/v.out" 2>"$WORK/v.err"
pid_v=$!
wait_registered "$V" "$mark"
echo "from mallory" | timeout -k 2 20 "$TCPUNCH" -s "$SRV" -i "$M" -t 2 --no-relay connect "$V" \
    >"$WORK/m.out" 2>"$WORK/m.err"
check_rc "listen: mallory (another key) gets no connection" 4 $?
check "listen: mallory was refused by --peer-key" grep -q "PEER KEY MISMATCH" "$WORK/v.err"
check "listen: still waiting after mallory" kill -0 "$pid_v"
raw_stranger "$V" raw1
check "listen: still waiting after the raw stranger" kill -0 "$pid_v"
check "listen: the raw stranger was refused by --peer-key before any dial" \
    grep -q "refusing a session with raw-.*PEER KEY MISMATCH" "$WORK/v.err"
timeout -k 2 30 "$TCPUNCH" -s "$SRV" -i "$A" -t 5 connect "$V" <"$WORK/a.in" >"$WORK/a.out" \
    2>"$WORK/a.err"
check_rc "listen: alice connects after the strangers" 0 $?
wait "$pid_v"
check_rc "listen: the victim, after alice" 0 $?
same_file "listen: alice's data" "$WORK/a.in" "$WORK/v.out"
check "listen: nothing of mallory's" sh -c "! grep -q 'from mallory' '$WORK/v.out'"

# ---- receive, known_peers pinning carol ----
R=$(uid recv)
C=$(uid carol)
mkdir -p "$WORK/home/$R" "$WORK/dst" "$WORK/src"
chmod 700 "$WORK/home/$R"
echo "$C $(key_of "$(uid someone-else)")" >"$WORK/home/$R/known_peers"
chmod 600 "$WORK/home/$R/known_peers"
head -c 100000 /dev/urandom >"$WORK/src/photo.bin"
# receive takes files only from the senders it names, where it knows --from (older: anyone)
FROM=()
"$TCPUNCH_BIN" --help | grep -q -- "--from" && FROM=(--from "$A")
echo evil >"$WORK/src/evil.txt"
start_receive_victim 4 "${FROM[@]}"
# mallory takes the id carol (nobody had it on this server) with its own identity
TCPUNCH_HOME=$WORK/home/$M timeout -k 2 20 "$TCPUNCH_BIN" -s "$SRV" -i "$C" -t 2 --no-relay \
    send "$R" "$WORK/src/evil.txt" >/dev/null 2>"$WORK/mc.err"
check_rc "receive: mallory as carol gets no connection" 4 $?
if [ ${#FROM[@]} -gt 0 ]; then
    # not named by --from: refused at the punch order, before the handshake
    check "receive: refused by --from" \
        grep -q "refusing a session with $C: not a sender named by --from" "$WORK/r.err"
else
    check "receive: refused by known_peers" grep -q "HAS CHANGED" "$WORK/r.err"
fi
check "receive: still waiting after mallory" kill -0 "$pid_r"
raw_stranger "$R" raw2
if [ ${#FROM[@]} -gt 0 ]; then
    check "receive: the raw stranger is refused by --from" \
        grep -q "refusing a session with raw-.*not a sender named by --from" "$WORK/r.err"
else
    check "receive: the raw stranger's session is being set up" grep -q "punching to raw-" "$WORK/r.err"
fi
alice_sends
check_rc "receive: alice sends while the raw stranger's session is being set up" 0 $?
receive_victim_done
check "receive: nothing of mallory's" test ! -e "$WORK/dst/evil.txt"

# ---- chat, no pin ----
start_chat_victim 4
raw_stranger "$H" raw3
check "chat: the raw stranger's session is being set up" grep -q "punching to raw-" "$WORK/h.err"
alice_chats
check_rc "chat: alice chats while the raw stranger's session is being set up" 0 $?
chat_victim_done
finish
