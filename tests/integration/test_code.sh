#!/bin/bash
# One-time codes (README, "Codes") on loopback, with the real server's mailbox: `send FILE`
# prints a code and `receive CODE` gets the files intact; `listen --code` / `connect --code`
# pipe both ways; a wrong code fails both sides (exit 12) and burns the code; an unknown code
# is exit 13; a code for send typed into connect --code is refused; --remember records the
# other side (and only then), and the next transfer needs no code; a code session cut
# mid-transfer resumes; a typo is a usage error before any network; send's note on an
# ambiguous first argument; the --json code event; a dead, silent or lying mailbox.
# (The NAT lab and the lying-server tests are tests/natlab and tests/adversarial.)
source "$(dirname "$0")/lib.sh" "$@"

WORDS=$TESTDIR/../../proto/words.txt
start_server --code-rate 0 # every peer of the test is 127.0.0.1
SRV=127.0.0.1:$SERVER_PORT

# wait_code FILE: waits (10 s) for the maker's "Code: ..." line in FILE; sets CODE.
has_code() { grep -q '^Code: ' "$1"; }
wait_code() {
    CODE=
    wait_until 10 has_code "$1" || return 1
    CODE=$(sed -n 's/^Code: //p' "$1" | head -n 1)
}

# key_of ID: the public key of that peer's identity (its home is the wrapper's).
key_of() {
    "$TCPUNCH" -i "$1" id | sed -n 's/^key: *//p'
}

mkdir -p "$WORK/src/tree" "$WORK/dst"
head -c $((3 * 1024 * 1024)) /dev/urandom >"$WORK/src/big.bin"
printf 'hello\n' >"$WORK/src/tree/a.txt"

# --- send FILE... -> receive CODE
A=$(uid maker)
B=$(uid claimer)
(cd "$WORK/src" && exec timeout -k 2 60 "$TCPUNCH" -s "$SRV" -i "$A" send big.bin tree) \
    >"$WORK/m.out" 2>"$WORK/m.err" &
PID_M=$!
BG_PIDS+=($PID_M)
wait_code "$WORK/m.err" || die "the maker printed no Code: line"
check "the code looks like N-word-word ($CODE)" \
    bash -c "[[ '$CODE' =~ ^[1-9][0-9]{0,5}-[a-z]{3,8}-[a-z]{3,8}\$ ]]"
check "the maker says what to type on the other side" \
    grep -qF "tcpunch receive $CODE" "$WORK/m.err"
timeout -k 2 60 "$TCPUNCH" -s "$SRV" -i "$B" --dir "$WORK/dst" receive "$CODE" \
    >"$WORK/c.out" 2>"$WORK/c.err"
check_rc "receive CODE" 0 $?
wait "$PID_M"
check_rc "send FILE... (the maker)" 0 $?
same_file "big.bin arrived intact" "$WORK/src/big.bin" "$WORK/dst/big.bin"
same_file "tree/a.txt arrived intact" "$WORK/src/tree/a.txt" "$WORK/dst/tree/a.txt"
check "the receiver names the maker in its path line" grep -q "connected to $A" "$WORK/c.err"
check "nothing on the maker's stdout" test ! -s "$WORK/m.out"
check "nothing on the claimer's stdout" test ! -s "$WORK/c.out"
check "without --remember the maker records nothing" \
    bash -c "! grep -qs '^$B ' '$WORK/home/$A/known_peers'"
check "without --remember the claimer records nothing" \
    bash -c "! grep -qs '^$A ' '$WORK/home/$B/known_peers'"

# --- listen --code / connect --code: a pipe both ways
A=$(uid pmaker)
B=$(uid pclaimer)
head -c 200000 /dev/urandom >"$WORK/to_claimer"
head -c 100000 /dev/urandom >"$WORK/to_maker"
spawn 60 "$TCPUNCH" -s "$SRV" -i "$A" listen --code <"$WORK/to_claimer" >"$WORK/pm.out" \
    2>"$WORK/pm.err"
PID_M=$!
wait_code "$WORK/pm.err" || die "listen --code printed no Code: line"
check "listen --code names connect --code" grep -qF "tcpunch connect --code $CODE" "$WORK/pm.err"
timeout -k 2 60 "$TCPUNCH" -s "$SRV" -i "$B" connect --code "$CODE" <"$WORK/to_maker" \
    >"$WORK/pc.out" 2>"$WORK/pc.err"
check_rc "connect --code CODE" 0 $?
wait "$PID_M"
check_rc "listen --code" 0 $?
same_file "maker -> claimer through the pipe" "$WORK/to_claimer" "$WORK/pc.out"
same_file "claimer -> maker through the pipe" "$WORK/to_maker" "$WORK/pm.out"

# --- a wrong code: both sides exit 12, the code is burned
A=$(uid wmaker)
B=$(uid wclaimer)
spawn 60 "$TCPUNCH" -s "$SRV" -i "$A" send --code "$WORK/src/big.bin" >/dev/null \
    2>"$WORK/wm.err"
PID_M=$!
wait_code "$WORK/wm.err" || die "the maker printed no Code: line"
last=${CODE##*-}
other=$(grep -v '^#' "$WORDS" | grep -vx "$last" | head -n 1)
WRONG=${CODE%-*}-$other
mark=$(log_mark)
timeout -k 2 30 "$TCPUNCH" -s "$SRV" -i "$B" --dir "$WORK/dst" receive "$WRONG" \
    2>"$WORK/wc.err"
check_rc "receive with a wrong code" 12 $?
wait "$PID_M"
check_rc "the maker of the code typed wrong" 12 $?
check "the maker says the code is burned" \
    grep -q "wrong code: someone typed a wrong code (or guessed); the code is burned" \
    "$WORK/wm.err"
check "the claimer says the code is burned" grep -q "the code is burned" "$WORK/wc.err"
timeout -k 2 30 "$TCPUNCH" -s "$SRV" -i "$B" --dir "$WORK/dst" receive "$CODE" \
    2>"$WORK/wc2.err"
check_rc "the right code after a wrong one" 13 $?
check "it is no such code any more" grep -q "no such code" "$WORK/wc2.err"

# --- an unknown code
timeout -k 2 30 "$TCPUNCH" -s "$SRV" -i "$B" receive 999999-acorn-zipper 2>"$WORK/u.err"
check_rc "receive of a code nobody made" 13 $?
check "one clear line" grep -q "no such code: it expired, was already used, or was never made" \
    "$WORK/u.err"

# --- a send code typed into connect --code: refused (and burned) on both sides
A=$(uid mmaker)
B=$(uid mclaimer)
spawn 60 "$TCPUNCH" -s "$SRV" -i "$A" send "$WORK/src/big.bin" >/dev/null 2>"$WORK/mm.err"
PID_M=$!
wait_code "$WORK/mm.err" || die "the maker printed no Code: line"
timeout -k 2 30 "$TCPUNCH" -s "$SRV" -i "$B" connect --code "$CODE" </dev/null \
    >"$WORK/mc.out" 2>"$WORK/mc.err"
check_rc "connect --code with a send code" 12 $?
check "it says what the code was made for" grep -q "made for \`tcpunch receive CODE\`" \
    "$WORK/mc.err"
wait "$PID_M"
check_rc "the send whose code went to connect" 12 $?

# --- --remember: both record the other (its real key), and the next time needs no code
A=$(uid rmaker)
B=$(uid rclaimer)
rm -rf "$WORK/dst2"
mkdir -p "$WORK/dst2"
spawn 60 "$TCPUNCH" -s "$SRV" -i "$A" --remember send "$WORK/src/tree/a.txt" >/dev/null \
    2>"$WORK/rm.err"
PID_M=$!
wait_code "$WORK/rm.err" || die "the maker printed no Code: line"
timeout -k 2 60 "$TCPUNCH" -s "$SRV" -i "$B" --remember --dir "$WORK/dst2" receive "$CODE" \
    2>"$WORK/rc.err"
check_rc "receive --remember" 0 $?
wait "$PID_M"
check_rc "send --remember" 0 $?
check "the maker recorded the claimer's key" \
    grep -qx "$B $(key_of "$B")" "$WORK/home/$A/known_peers"
check "the claimer recorded the maker's key" \
    grep -qx "$A $(key_of "$A")" "$WORK/home/$B/known_peers"
rm -f "$WORK/dst2/a.txt"
mark=$(log_mark)
spawn 60 "$TCPUNCH" -s "$SRV" -i "$B" --from "$A" --dir "$WORK/dst2" receive 2>"$WORK/r2.err"
PID_R=$!
wait_registered "$B" "$mark"
timeout -k 2 60 "$TCPUNCH" -s "$SRV" -i "$A" send "$B" "$WORK/src/tree/a.txt" 2>"$WORK/s2.err"
check_rc "the next send PEER FILE, no code" 0 $?
wait "$PID_R"
check_rc "the next receive --from, no code" 0 $?
same_file "the file of the next time" "$WORK/src/tree/a.txt" "$WORK/dst2/a.txt"
check "no new peer was trusted on first use the next time" \
    bash -c "! grep -q 'new peer' '$WORK/s2.err' '$WORK/r2.err'"

# --- a code session cut mid-transfer resumes (its resumption secret is bound to the code too)
ss_k_works() {
    python3 - <<'PY'
import socket, subprocess, sys
l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen()
c = socket.create_connection(l.getsockname()); s, _ = l.accept()
subprocess.run(['ss', '-K', '( sport = :%d )' % c.getsockname()[1]], capture_output=True)
s.settimeout(2)
try:
    s.recv(1)
    sys.exit(1)
except ConnectionResetError:
    sys.exit(0)
except Exception:
    sys.exit(1)
PY
}
# peer_port PID: the local port of PID's established connection that is not to the server
peer_port() {
    ss -tnpH state established | grep "pid=$1," | awk -v s=":$SERVER_PORT" \
        '$3 !~ s"$" && $4 !~ s"$" {n = split($3, a, ":"); print a[n]; exit}'
}
if ss_k_works; then
    A=$(uid cmaker)
    B=$(uid cclaimer)
    rm -rf "$WORK/dst3"
    mkdir -p "$WORK/dst3"
    head -c $((48 * 1024 * 1024)) /dev/urandom >"$WORK/src/huge.bin"
    spawn 90 "$TCPUNCH" -v -s "$SRV" -i "$A" send "$WORK/src/huge.bin" >/dev/null 2>"$WORK/cm.err"
    PID_M=$!
    wait_code "$WORK/cm.err" || die "the maker printed no Code: line"
    spawn 90 "$TCPUNCH" -v -s "$SRV" -i "$B" --dir "$WORK/dst3" receive "$CODE" \
        2>"$WORK/cc.err"
    PID_C=$!
    for _ in $(seq 1 2000); do
        [ -n "$(find "$WORK/dst3" -name '*.tcpunch-part-*' 2>/dev/null)" ] && break
        sleep 0.005
    done
    REAL_C=$(under_timeout "$PID_C")
    kill -STOP "$REAL_C"
    sleep 0.5
    port=$(peer_port "$(under_timeout "$PID_M")")
    check "a peer-to-peer connection to cut (port ${port:-none})" test -n "$port"
    [ -n "$port" ] && ss -K "( sport = :$port )" >/dev/null 2>&1
    sleep 3
    kill -CONT "$REAL_C"
    wait "$PID_M"
    check_rc "send FILE cut mid-transfer" 0 $?
    wait "$PID_C"
    check_rc "receive CODE cut mid-transfer" 0 $?
    same_file "huge.bin after the cut" "$WORK/src/huge.bin" "$WORK/dst3/huge.bin"
    check "both sides resumed the code session" \
        test "$(cat "$WORK/cm.err" "$WORK/cc.err" | grep -c 'resumed with')" -eq 2
    rm -f "$WORK/src/huge.bin" "$WORK/dst3/huge.bin"
else
    echo "SKIPPED: the resume of a code session (ss -K cannot cut a loopback connection here)"
fi

# --- a typo: usage error, before any network
mark=$(log_mark)
timeout -k 2 10 "$TCPUNCH" -s "$SRV" -i "$B" receive 7-guitar-ribon 2>"$WORK/t.err"
check_rc "a typo in a code" 1 $?
check "it says to check the spelling" grep -q "check the spelling" "$WORK/t.err"
timeout -k 2 10 "$TCPUNCH" -s "$SRV" -i "$B" connect --code 7-guitar 2>"$WORK/t2.err"
check_rc "a code of one word" 1 $?
timeout -k 2 10 "$TCPUNCH" -s "$SRV" -i "$B" --code-words 3 receive 7-guitar-ribbon \
    2>"$WORK/t3.err"
check_rc "--code-words with a code typed" 1 $?
sleep 0.3
check "the server saw none of them" bash -c "[ -z \"\$(tail -c +$((mark + 1)) '$SERVER_LOG')\" ]"

# --- send's note when the first argument could be a peer too; --json's code event
A=$(uid nmaker)
mkdir -p "$WORK/amb"
printf 'x\n' >"$WORK/amb/bob"
printf 'y\n' >"$WORK/amb/other"
(cd "$WORK/amb" && exec timeout -k 2 30 "$TCPUNCH" -s "$SRV" -i "$A" --json send bob other) \
    >/dev/null 2>"$WORK/n.err" &
PID_M=$!
BG_PIDS+=($PID_M)
has_event() { grep -q '"event":"code"' "$WORK/n.err"; }
check "--json: the code event" wait_until 10 has_event
check "--json: the event carries the code and the command" \
    grep -qE '"event":"code","code":"[0-9]+-[a-z]+-[a-z]+","ttl":[0-9]+,"command":"tcpunch receive","message":"Code: [0-9]+-[a-z]+-[a-z]+"' \
    "$WORK/n.err"
check "the ambiguous first argument is noted, with the way to the other reading" \
    grep -q 'sent as a file, with a code; to send to the peer bob instead: tcpunch send --to bob' \
    "$WORK/n.err"
check "--json: no human Code: line" bash -c "! grep -q '^Code: ' '$WORK/n.err'"
kill "$PID_M" 2>/dev/null
wait "$PID_M" 2>/dev/null

# --- a dead server: a clean exit 2
dead=$(free_port)
timeout -k 2 20 "$TCPUNCH" -s "127.0.0.1:$dead" -i "$B" receive 7-guitar-ribbon 2>"$WORK/d.err"
check_rc "receive CODE with no server" 2 $?

# --- a broken or lying mailbox (codesrv.py): clear exits, bounded waits, the code burned
# fake MODE EXPECT SECONDS_AT_MOST COMMAND...: the peer against codesrv.py MODE
fake() {
    local mode=$1 want=$2 most=$3 port start rc
    shift 3
    port=$(free_port)
    spawn 70 python3 "$TESTDIR/codesrv.py" "$mode" "$port" "$WORK/fake-$mode.rec"
    wait_until 5 listening "$port" || die "codesrv.py $mode does not listen"
    start=$(date +%s)
    timeout -k 2 70 "$TCPUNCH" -s "127.0.0.1:$port" -i "$B" "$@" </dev/null >/dev/null \
        2>"$WORK/fake-$mode.err"
    rc=$?
    check_rc "a mailbox that is $mode" "$want" "$rc"
    check "... within $most s" test $(($(date +%s) - start)) -le "$most"
}
fake nocode 2 10 receive 5-acorn-zipper
check "it says the server has no codes" grep -q "does not support codes" "$WORK/fake-nocode.err"
fake silent 2 40 receive 5-acorn-zipper
check "it says the server did not answer" grep -q "did not answer the code exchange" \
    "$WORK/fake-silent.err"
fake silent 2 20 listen --code
fake badad 12 10 receive 5-acorn-zipper
check "a hostile AD is refused, the code burned" grep -qx "code-abort 5" "$WORK/fake-badad.rec"
check "... without a share of ours" bash -c "! grep -q code-answer '$WORK/fake-badad.rec'"
fake reflect 12 10 send "$WORK/src/tree/a.txt"
check "the maker's own post reflected is refused, the code burned" \
    grep -qx "code-abort 5" "$WORK/fake-reflect.rec"
check "... and no tag of ours goes out" bash -c "! grep -q code-confirm '$WORK/fake-reflect.rec'"
fake early 2 10 receive 5-acorn-zipper
check "a confirm out of turn breaks the exchange" grep -q "broke the code exchange" \
    "$WORK/fake-early.err"
finish
