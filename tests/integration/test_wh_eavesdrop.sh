#!/bin/bash
# A third party who sees every byte at the server cannot complete a code exchange (issue 18,
# docs/design/wormhole.md 2.2 and section 6). Every peer reaches the server through a recording
# proxy (recorder.py): the attacker (whguess.py, its own identity) has the full transcript.
#  1. an honest exchange through the recorder: `send FILE` / `receive CODE` (the transcript);
#  2. the positive control: a claimer with the RIGHT words (whguess.py, a CPace of its own,
#     checked against the draft's vectors by whlib.py) completes the PAKE with a real maker:
#     the maker confirms it. So the failures below are the code's doing, not a broken client;
#     it also yields an ISK, MAC key and binding key to look for in the recording;
#  3. a replay: a new maker's channel, read from the recording, claimed first by the attacker,
#     who answers with the recorded answer of exchange 1: the maker refuses it, exits 12,
#     never connects, and the real receiver then gets "no such code" (13);
#     (and while that confirmed maker waits for its claimer's punch order, a stranger who
#     asks for the maker first is not admitted: no handshake completes);
#  4. a guess: the same with a fresh CPace run with wrong words: the same outcome; a claimer
#     who vanishes right after its claim burns the code too (maker 12, receiver 13);
#  5. the recording holds no word of any code (as words, as the PRS, inside base64 members)
#     and none of the keys of step 2 (raw, hex, base64); the detector finds a code in the
#     maker's own stderr (so it can find one).
source "$(dirname "$0")/lib.sh" "$@"
source "$TESTDIR/wh.sh"

# every peer of the test comes from 127.0.0.1: no per-address code limit (test_wh_flood has it)
start_server --code-rate 0
PROXY=$(free_port) || die "no free port"
mkdir -p "$WORK/rec" "$WORK/dst/3" "$WORK/dst/4"
spawn 170 python3 "$TESTDIR/recorder.py" "$PROXY" "$SERVER_PORT" "$WORK/rec" "$WORK/stop" 160
wait_until 5 listening "$PROXY" || die "the recorder does not listen"
VIA=127.0.0.1:$PROXY
M=$(uid maker)
R=$(uid taker)
EVE=$(uid eve)
head -c 65536 /dev/urandom >"$WORK/data.bin"
GUESS=$TESTDIR/whguess.py

# the newest channel a code-opened line in the recording names
seen_channel() {
    python3 "$GUESS" opened "$WORK/rec" | tail -n 1
}
has_channel() { [ "$(seen_channel)" = "$1" ]; }

# ---- 1. the transcript of one honest exchange
wh_maker s1 60 -s "$VIA" -i "$M-1" send "$WORK/data.bin"
C1=$CODE
timeout -k 2 60 "$TCPUNCH" -s "$VIA" -i "$R-1" receive "$C1" --dir "$WORK/dst" \
    >/dev/null 2>"$WORK/r1.err"
check_rc "receive through the recorder" 0 $?
wh_wait "$MAKER_PID" 30
check_rc "send through the recorder" 0 $?
same_file "the file of the recorded exchange" "$WORK/data.bin" "$WORK/dst/data.bin"
python3 "$GUESS" answer "$WORK/rec" >"$WORK/answer1.json" ||
    die "the recording has no code-answer: the attacker has no transcript"
pass "the recording holds the exchange's answer: $(cut -c1-80 "$WORK/answer1.json")..."

# ---- 2. the positive control: the right words complete the PAKE with a real maker; while the
# confirmed maker waits for its claimer's punch order, a stranger asks for it first
# (this maker reaches the server directly, so that the server's punch order names its real
# punch port for the stranger to dial; the claimer's side, every PAKE message, is recorded)
wh_maker s2 60 -s "127.0.0.1:$SERVER_PORT" -i "$M-2" send "$WORK/data.bin"
C2=$CODE
spawn 40 python3 "$GUESS" claim "$PROXY" "$EVE-2" "$(wh_channel "$C2")" "right-wait:$(wh_words "$C2")" \
    "$WORK/ctl.json" >"$WORK/ctl.log" 2>&1
CTL=$!
if wait_until 10 test -s "$WORK/ctl.json.confirmed"; then
    timeout -k 2 30 python3 "$GUESS" intrude "$SERVER_PORT" "$EVE-2x" "$M-2" "$WORK/intrude.json" \
        >"$WORK/intrude.log" 2>&1
    if grep -q '"result": "confirmed"' "$WORK/intrude.json"; then
        fail "a stranger completed a handshake with the confirmed maker: $(cat "$WORK/intrude.json")"
    else
        pass "a stranger who asks for the confirmed maker is not admitted: $(cat "$WORK/intrude.json")"
    fi
    check "the server did introduce the stranger (so the maker's refusal is what stopped it)" \
        grep -q '"connect": \["punch"' "$WORK/intrude.json"
    wh_said "$WORK/s2.err" "refusing a session with $EVE-2x" "the confirmed maker refuses the stranger"
else
    fail "the control claimer was not confirmed within 10 s"
fi
touch "$WORK/ctl.json.go"
wh_wait "$CTL" 30
if grep -q '"result": "confirmed"' "$WORK/ctl.json"; then
    pass "with the right words the maker confirms the claimer (whguess's CPace interoperates)"
else
    fail "the right words did not complete the PAKE: $(cat "$WORK/ctl.json" 2>/dev/null)"
fi
wh_wait "$MAKER_PID" 30
RC=$?
check_rc "the maker whose confirmed claimer aborted" 12 "$RC"
wh_not_connected "$WORK/s2.err" "the maker of the control"

# ---- 3. a replay of the recorded answer on a new channel, claimed first
wh_maker s3 60 -s "$VIA" -i "$M-3" send "$WORK/data.bin"
C3=$CODE
wait_until 5 has_channel "$(wh_channel "$C3")" || fail "the recorder saw no code-opened for $C3"
N3=$(seen_channel)
timeout -k 2 30 python3 "$GUESS" claim "$PROXY" "$EVE-3" "$N3" "replay:$WORK/answer1.json" \
    "$WORK/replay.json" >"$WORK/replay.log" 2>&1
wh_wait "$MAKER_PID" 30
check_rc "the maker answered with a replayed answer" 12 $?
check "the replaying attacker is told the code was wrong" grep -q '"result": "wrong"' "$WORK/replay.json"
wh_said "$WORK/s3.err" "wrong code" "the maker says wrong code"
wh_not_connected "$WORK/s3.err" "the maker of the replayed channel"
timeout -k 2 30 "$TCPUNCH" -s "$VIA" -i "$R-3" receive "$C3" --dir "$WORK/dst/3" \
    >/dev/null 2>"$WORK/r3.err"
check_rc "the real receiver after the replay (burned)" 13 $?

# ---- 4. a guess with wrong words, claimed first
wh_maker s4 60 -s "$VIA" -i "$M-4" send "$WORK/data.bin"
C4=$CODE
wait_until 5 has_channel "$(wh_channel "$C4")" || fail "the recorder saw no code-opened for $C4"
N4=$(seen_channel)
timeout -k 2 30 python3 "$GUESS" claim "$PROXY" "$EVE-4" "$N4" "wrong:$(wh_other_words "$C4")" \
    "$WORK/guess.json" >"$WORK/guess.log" 2>&1
wh_wait "$MAKER_PID" 30
check_rc "the maker answered by a wrong guess" 12 $?
check "the guesser is told the code was wrong" grep -q '"result": "wrong"' "$WORK/guess.json"
wh_said "$WORK/s4.err" "wrong code" "the maker says wrong code"
wh_not_connected "$WORK/s4.err" "the maker of the guessed channel"
timeout -k 2 30 "$TCPUNCH" -s "$VIA" -i "$R-4" receive "$C4" --dir "$WORK/dst/4" \
    >/dev/null 2>"$WORK/r4.err"
check_rc "the real receiver after the guess (burned)" 13 $?
check "nothing arrived after the attacks" test ! -e "$WORK/dst/3/data.bin" -a ! -e "$WORK/dst/4/data.bin"

# ---- 4b. a claimer who vanishes right after the claim burns the code (the maker hears it)
wh_maker s5 60 -s "$VIA" -i "$M-5" send "$WORK/data.bin"
C5=$CODE
wait_until 5 has_channel "$(wh_channel "$C5")" || fail "the recorder saw no code-opened for $C5"
timeout -k 2 30 python3 "$GUESS" claim "$PROXY" "$EVE-5" "$(seen_channel)" vanish \
    "$WORK/vanish.json" >"$WORK/vanish.log" 2>&1
wh_wait "$MAKER_PID" 30
check_rc "the maker whose claimer vanished" 12 $?
wh_not_connected "$WORK/s5.err" "the maker of the vanished claim"
timeout -k 2 30 "$TCPUNCH" -s "$VIA" -i "$R-5" receive "$C5" --dir "$WORK/dst/4" \
    >/dev/null 2>"$WORK/r5.err"
check_rc "the real receiver after the vanished claim (burned)" 13 $?

# ---- 5. what the recording holds
touch "$WORK/stop"
n=$(cat "$WORK"/rec/* | wc -c)
if python3 "$GUESS" leaks "$WORK/rec" "$C1" "$C2" "$C3" "$C4" "$C5" --secrets "$WORK/ctl.json" \
    >"$WORK/leaks.txt" 2>&1; then
    pass "no word of the 5 codes and none of the PAKE keys in the $n recorded bytes: $(tail -n 1 "$WORK/leaks.txt")"
else
    fail "the recording leaks: $(head -n 5 "$WORK/leaks.txt" | tr '\n' '|')"
fi
check "the recording holds the shares, sids and tags (the attacker saw the exchange)" \
    test "$(cat "$WORK"/rec/* | grep -ac '"type":"code-')" -ge 8
# the detector works: the maker's stderr has its code
if python3 "$GUESS" leaks "$WORK/s1.err" "$C1" >/dev/null 2>&1; then
    fail "the leak detector did not find $C1 in the maker's stderr"
else
    pass "the leak detector finds a code where there is one (the maker's stderr)"
fi
# and the keys of the control run, were they written into the recording
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("{\"leak\":\"%s\"}" % r["isk"])' \
    "$WORK/ctl.json" >"$WORK/fake-leak" 2>/dev/null
if python3 "$GUESS" leaks "$WORK/fake-leak" "$C2" --secrets "$WORK/ctl.json" >/dev/null 2>&1; then
    fail "the leak detector did not find the ISK written in hex"
else
    pass "the leak detector finds an ISK where there is one"
fi

finish
