#!/bin/bash
# Sessions that survive their connection (PROTOCOL.md section 18), on loopback: a connect/listen
# pipe whose peer-to-peer connection is killed mid-transfer (ss -K, what a reset on the path
# looks like) resumes through the server and delivers every byte exactly once; the events say
# so; --resume-timeout 0 keeps today's stream (exit 5 at the cut); a peer that dies without a
# word ends the other's session with exit 11 after --resume-timeout.
source "$(dirname "$0")/lib.sh" "$@"

if [ "$(id -u)" -ne 0 ]; then
    echo "SKIPPED: needs root (ss -K kills the connection under the session)"
    exit 77
fi

start_server
head -c 3000000 /dev/urandom >"$WORK/a.in"
head -c 3000000 /dev/urandom >"$WORK/b.in"
SRV=127.0.0.1:$SERVER_PORT

# slow FILE: its first MB at once, the rest after SLOW_PAUSE s (the cut lands in the pause)
cat >"$WORK/slow" <<'EOS'
#!/bin/bash
head -c 1000000 "$1"; sleep "${SLOW_PAUSE:-3}"; tail -c +1000001 "$1"
EOS
chmod +x "$WORK/slow"

# The peer-to-peer connection's local port on alice's side (any of its two ends will do): an
# established TCP connection of a tcpunch process that is not to the server.
p2p_port() {
    ss -Htnp state established 2>/dev/null | grep '"tcpunch"' | grep -v ":$SERVER_PORT\b" |
        awk '{ n = split($3, a, ":"); print a[n]; exit }'
}
have_p2p() { [ -n "$(p2p_port)" ]; }

# cut: kills the peer-to-peer connection; fails when there is none or it stays
cut() {
    local p
    wait_until 10 have_p2p || return 1
    p=$(p2p_port)
    ss -HtnK "( sport = :$p )" >/dev/null 2>&1
    ! ss -Htn state established "( sport = :$p )" 2>/dev/null | grep -q .
}

# pair NAME [flags for both]: bob listens, alice connects, both fed slowly; the pids in PB, PA
pair() {
    local name=$1 mark
    shift
    B=$(uid "b$name") A=$(uid "a$name")
    mark=$(log_mark)
    spawn 60 bash -c '"$1" "$2" | exec "${@:3}"' _ "$WORK/slow" "$WORK/b.in" "$TCPUNCH" -s "$SRV" \
        -i "$B" "$@" listen >"$WORK/$name.b.out" 2>"$WORK/$name.b.err"
    PB=$!
    wait_registered "$B" "$mark"
    spawn 60 bash -c '"$1" "$2" | exec "${@:3}"' _ "$WORK/slow" "$WORK/a.in" "$TCPUNCH" -s "$SRV" \
        -i "$A" "${ALICE_FLAGS[@]}" "$@" connect "$B" >"$WORK/$name.a.out" 2>"$WORK/$name.a.err"
    PA=$!
}

ALICE_FLAGS=()
# 1. one cut: resumed, intact, both exit 0
pair one
sleep 1.2
check "the first cut found the peer-to-peer connection" cut
wait "$PA"; RA=$?
wait "$PB"; RB=$?
check_rc "one cut, connect side" 0 "$RA"
check_rc "one cut, listen side" 0 "$RB"
same_file "one cut: alice -> bob" "$WORK/a.in" "$WORK/one.b.out"
same_file "one cut: bob -> alice" "$WORK/b.in" "$WORK/one.a.out"
check "alice says the connection was lost and is resuming" \
    grep -q "connection to .* lost (.*); resuming for up to 120 s" "$WORK/one.a.err"
check "alice says it resumed via direct" grep -q "resumed with .* after [0-9]* ms via direct" "$WORK/one.a.err"
check "bob says it resumed" grep -q "resumed with .* after [0-9]* ms via direct" "$WORK/one.b.err"

# 2. two cuts, alice with --json: the events
ALICE_FLAGS=(--json)
SLOW_PAUSE=5
export SLOW_PAUSE
pair two
sleep 1.2
check "the first of two cuts" cut
sleep 1.5
check "the second of two cuts" cut
wait "$PA"; RA=$?
wait "$PB"; RB=$?
check_rc "two cuts, connect side" 0 "$RA"
check_rc "two cuts, listen side" 0 "$RB"
same_file "two cuts: alice -> bob" "$WORK/a.in" "$WORK/two.b.out"
same_file "two cuts: bob -> alice" "$WORK/b.in" "$WORK/two.a.out"
check "two suspended events" test "$(grep -c '"event": *"suspended"' "$WORK/two.a.err")" -eq 2
check "two resumed events, via direct, epochs 1 and 2" \
    bash -c 'grep "\"event\": *\"resumed\"" "$1" | grep -q "\"epoch\": *1" &&
             grep "\"event\": *\"resumed\"" "$1" | grep -q "\"epoch\": *2" &&
             [ "$(grep "\"event\": *\"resumed\"" "$1" | grep -c "\"via\": *\"direct\"")" -eq 2 ]' _ "$WORK/two.a.err"
check "bob resumed twice" test "$(grep -c 'resumed with' "$WORK/two.b.err")" -eq 2
SLOW_PAUSE=3

# 3. --resume-timeout 0: the layer is off, the cut ends both as today (exit 5)
ALICE_FLAGS=()
pair off --resume-timeout 0
sleep 1.2
check "the cut without the session layer" cut
wait "$PA"; RA=$?
wait "$PB"; RB=$?
check_rc "--resume-timeout 0, connect side" 5 "$RA"
check_rc "--resume-timeout 0, listen side" 5 "$RB"
check "--resume-timeout 0: no resume" bash -c '! grep -qE "resuming|resumed with" "$1" "$2"' _ "$WORK/off.a.err" "$WORK/off.b.err"

# 4. a peer killed without a word: the other ends with exit 11 after --resume-timeout 3
pair dead --resume-timeout 3
sleep 1.2
have_p2p || wait_until 5 have_p2p
# timeout -> bash -> (slow, tcpunch): bob's tcpunch by its parent's pid
BOB_PID=$(pgrep -x -P "$(under_timeout "$PB")" tcpunch | head -n 1)
check "found bob's process" test -n "$BOB_PID"
[ -z "$BOB_PID" ] || kill -9 "$BOB_PID"
T0=$(date +%s%N)
wait "$PA"; RA=$?
T1=$(date +%s%N)
check_rc "the peer killed -9: connect side" 11 "$RA"
check "the peer killed -9: the end came within 20 s" test $(((T1 - T0) / 1000000000)) -le 20
check "the peer killed -9: the message says not resumed within 3 s" \
    grep -q "not resumed within 3 s" "$WORK/dead.a.err"
finish
