#!/bin/bash
# Wormhole codes on loopback (docs/design/wormhole.md section 6), black box:
#  - `send FILE` (no peer) prints "Code: N-word-word" on stderr; `receive CODE` gets the file,
#    byte-identical, over a direct path; nothing on stdout; the server never logs the words;
#  - `listen --code` / `connect --code CODE` pipe both ways (the maker with --json: an event
#    `code`);
#  - a wrong code (the right channel, other words) is refused and burns the channel: both
#    sides say so and exit 12, nothing arrives; the right code after it gets "no such code",
#    exit 13;
#  - a code for the other command (a listen --code code typed into receive) is refused on both
#    sides, nothing connects;
#  - a code that was never made: exit 13 at once; a typo in a code: exit 1 before any network.
source "$(dirname "$0")/lib.sh" "$@"
source "$TESTDIR/wh.sh"

# every peer of the test comes from 127.0.0.1: no per-address code limit (test_wh_flood has it)
start_server --code-rate 0
SRV=127.0.0.1:$SERVER_PORT
M=$(uid maker)
R=$(uid taker)
mkdir -p "$WORK/dst"
head -c $((1024 * 1024)) /dev/urandom >"$WORK/data.bin"

# ---- send FILE / receive CODE
wh_maker s 60 -s "$SRV" -i "$M" send "$WORK/data.bin"
C1=$CODE
pass "send FILE printed the code $C1"
timeout -k 2 60 "$TCPUNCH" -s "$SRV" -i "$R" receive "$C1" --dir "$WORK/dst" \
    >"$WORK/r.out" 2>"$WORK/r.err"
RC_R=$?
wh_wait "$MAKER_PID" 30
RC_S=$?
check_rc "send with a code" 0 "$RC_S"
check_rc "receive CODE" 0 "$RC_R"
same_file "the file came through the code exchange" "$WORK/data.bin" "$WORK/dst/data.bin"
wh_said "$WORK/s.err" "connected to [^ ]+: direct" "the maker went direct"
wh_said "$WORK/r.err" "connected to [^ ]+: direct" "the receiver went direct"
check "send writes nothing on stdout" test ! -s "$WORK/s.out"
check "receive writes nothing on stdout" test ! -s "$WORK/r.out"
W1=$(wh_words "$C1" | tr '-' '|')
if grep -qiE "$W1" "$WORK/server.log"; then
    fail "the server log names a word of the code: $(grep -iE "$W1" "$WORK/server.log" | head -n 1)"
else
    pass "the server log names no word of the code (it logged $(wc -l <"$WORK/server.log") lines)"
fi

# ---- listen --code / connect --code
printf 'from the maker\n' >"$WORK/l.in"
printf 'from the claimer\n' >"$WORK/c.in"
wh_maker l 60 -s "$SRV" -i "$M-l" --json listen --code
C2=$CODE
check "listen --code --json: an event code" grep -q '"event":"code"' "$WORK/l.err"
timeout -k 2 60 "$TCPUNCH" -s "$SRV" -i "$R-c" connect --code "$C2" <"$WORK/c.in" \
    >"$WORK/c.out" 2>"$WORK/c.err"
RC_C=$?
wh_wait "$MAKER_PID" 30
RC_L=$?
check_rc "listen --code" 0 "$RC_L"
check_rc "connect --code" 0 "$RC_C"
same_file "the claimer's line reached the maker" "$WORK/c.in" "$WORK/l.out"
same_file "the maker's line reached the claimer" "$WORK/l.in" "$WORK/c.out"

# ---- a wrong code burns the channel
rm -rf "$WORK/dst" && mkdir -p "$WORK/dst"
wh_maker s2 60 -s "$SRV" -i "$M-2" send "$WORK/data.bin"
C3=$CODE
BAD="$(wh_channel "$C3")-$(wh_other_words "$C3")"
timeout -k 2 60 "$TCPUNCH" -s "$SRV" -i "$R-2" receive "$BAD" --dir "$WORK/dst" \
    >"$WORK/r2.out" 2>"$WORK/r2.err"
RC_R=$?
wh_wait "$MAKER_PID" 30
RC_S=$?
check_rc "receive with a wrong code ($BAD for $C3)" 12 "$RC_R"
check_rc "the maker of a code typed wrong" 12 "$RC_S"
wh_said "$WORK/s2.err" "wrong code" "the maker says the code was wrong"
wh_said "$WORK/s2.err" "burn" "the maker says the code is burned"
wh_said "$WORK/r2.err" "wrong|burn" "the receiver says the code was wrong"
wh_not_connected "$WORK/s2.err" "the maker of the burned code"
wh_not_connected "$WORK/r2.err" "the wrong-code receiver"
check "nothing arrived with the wrong code" test -z "$(ls -A "$WORK/dst")"
timeout -k 2 30 "$TCPUNCH" -s "$SRV" -i "$R-3" receive "$C3" --dir "$WORK/dst" \
    >"$WORK/r3.out" 2>"$WORK/r3.err"
check_rc "the right code after the wrong one (burned)" 13 $?
wh_said "$WORK/r3.err" "no such code" "the burned code is unknown"
check "nothing arrived with the burned code" test -z "$(ls -A "$WORK/dst")"

# ---- the code of the other command
: >"$WORK/l3.in"
wh_maker l3 60 -s "$SRV" -i "$M-3" listen --code
C4=$CODE
timeout -k 2 30 "$TCPUNCH" -s "$SRV" -i "$R-4" receive "$C4" --dir "$WORK/dst" \
    >"$WORK/r4.out" 2>"$WORK/r4.err"
RC_R=$?
wh_wait "$MAKER_PID" 30
RC_L=$?
check "receive refuses a listen --code code (exit $RC_R)" test "$RC_R" -ne 0 -a "$RC_R" -ne 124
check "the listen --code maker fails too (exit $RC_L)" test "$RC_L" -ne 0 -a "$RC_L" -ne 124
wh_said "$WORK/r4.err" "connect --code" "the receiver names the command the code is for"
wh_not_connected "$WORK/r4.err" "the receiver of a listen code"
wh_not_connected "$WORK/l3.err" "the listen --code maker"

# ---- three words, and --remember: the next time needs no code
rm -rf "$WORK/dst" && mkdir -p "$WORK/dst"
wh_maker s5 60 -s "$SRV" -i "$M-5" --code-words 3 --remember send "$WORK/data.bin"
C5=$CODE
check "--code-words 3 makes a code of three words ($C5)" test "$(wh_words "$C5" | tr '-' '\n' | wc -l)" -eq 3
timeout -k 2 60 "$TCPUNCH" -s "$SRV" -i "$R-5" --remember receive "$C5" --dir "$WORK/dst" \
    >/dev/null 2>"$WORK/r7.err"
check_rc "receive of a three-word code with --remember" 0 $?
wh_wait "$MAKER_PID" 30
check_rc "send of a three-word code with --remember" 0 $?
same_file "the file of the three-word code" "$WORK/data.bin" "$WORK/dst/data.bin"
key_of() { TCPUNCH_HOME=$WORK/home/$1 "$TCPUNCH_BIN" id | sed -n 's/^key: *//p'; }
KM=$(key_of "$M-5")
KR=$(key_of "$R-5")
check "the receiver remembered the maker's key" grep -qsF "$M-5 $KM" "$WORK/home/$R-5/known_peers"
check "the maker remembered the receiver's key" grep -qsF "$R-5 $KR" "$WORK/home/$M-5/known_peers"
# the next time by id, no code, no key given: known_peers pins it
rm -rf "$WORK/dst" && mkdir -p "$WORK/dst"
mark=$(log_mark)
spawn 60 "$TCPUNCH" -s "$SRV" -i "$R-5" receive --from "$M-5" --dir "$WORK/dst" >/dev/null \
    2>"$WORK/r8.err"
pid=$!
wait_registered "$R-5" "$mark"
timeout -k 2 60 "$TCPUNCH" -s "$SRV" -i "$M-5" send "$R-5" "$WORK/data.bin" >/dev/null \
    2>"$WORK/s8.err"
check_rc "send PEER FILE after the remembered code exchange" 0 $?
wh_wait "$pid" 30
check_rc "receive --from ID after the remembered code exchange" 0 $?
same_file "the file by id, no code" "$WORK/data.bin" "$WORK/dst/data.bin"

# ---- a code never made; a typo
timeout -k 2 30 "$TCPUNCH" -s "$SRV" -i "$R-5" receive "999999-acorn-apple" --dir "$WORK/dst" \
    >/dev/null 2>"$WORK/r5.err"
check_rc "a code never made" 13 $?
wh_said "$WORK/r5.err" "no such code" "a code never made is unknown"
mark=$(log_mark)
timeout -k 2 30 "$TCPUNCH" -s "$SRV" -i "$R-6" receive "7-acorn-notaword" --dir "$WORK/dst" \
    >/dev/null 2>"$WORK/r6.err"
check_rc "a typo in the code" 1 $?
wh_said "$WORK/r6.err" "spelling|not a word|word" "the typo is named"
sleep 0.3
not_logged() { ! log_since "$mark" | grep -qF -- "$1"; }
check "a typo reaches no server" not_logged "$R-6"

finish
