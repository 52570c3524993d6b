#!/usr/bin/env bash
# A resume FLOOD while a real session is suspended (docs/design/resume.md 4.8, issue 15 attack
# tests). alice (connect) and bob (listen) run a resumable pipe through the real server; alice
# is stopped and her connection killed (ss -K), so bob suspends and registers his id again to
# wait for her resume order. Meanwhile a stranger, registered under an id and key of its own,
# asks the server COUNT times at RATE per second (the server's --connect-rate) to resume
# alice's session with bob: connect{target: bob, resume: the root, which the server log shows
# as the first punch's session}. The server introduces it each time (a server cannot tell), so
# bob gets every order and must turn each one away before dialling: no punch towards the
# stranger, no connection to the endpoint it declared. Then alice goes on: the real session
# resumes, and every byte both ways arrives once and in order. Runs in a network namespace
# of its own (ownns.sh): ss -K and the ports meet nothing else.
# test_resume_someone_else.sh is the same with one order (RESUME_FLOOD_COUNT=1).
source "$(dirname "$0")/ownns.sh" "$@"
source "$(dirname "$0")/../integration/lib.sh" "$@"
ADV=$(cd "$(dirname "$0")" && pwd)
command -v python3 >/dev/null || { echo "SKIPPED: python3 is needed" >&2; exit 77; }
command -v ss >/dev/null || { echo "SKIPPED: ss (iproute2) is needed to cut the connection" >&2; exit 77; }
COUNT=${RESUME_FLOOD_COUNT:-50}
RATE=${RESUME_FLOOD_RATE:-5}

A=$(uid alice)
B=$(uid bob)
M=$(uid mallory)
start_server --connect-rate 5
SRV=127.0.0.1:$SERVER_PORT

# gen TAG: 400 numbered lines of 100 bytes, one every 50 ms (20 s): the session outlives the cut
cat >"$WORK/gen.py" <<'EOF_GEN'
import sys, time
tag, gap = sys.argv[1], float(sys.argv[2])
for i in range(400):
    sys.stdout.write(f"{tag} {i:05d} " + "x" * 90 + "\n")
    sys.stdout.flush()
    time.sleep(gap)
EOF_GEN
python3 "$WORK/gen.py" "$A" 0 >"$WORK/a.want"
python3 "$WORK/gen.py" "$B" 0 >"$WORK/b.want"
mkfifo "$WORK/a.in" "$WORK/b.in"
# the writers open their FIFO in the background (an open blocks until the reader comes)
spawn 60 sh -c 'exec python3 "$0" "$1" 0.05 >"$2"' "$WORK/gen.py" "$B" "$WORK/b.in"
spawn 60 sh -c 'exec python3 "$0" "$1" 0.05 >"$2"' "$WORK/gen.py" "$A" "$WORK/a.in"

mark=$(log_mark)
spawn 80 "$TCPUNCH" -v -s "$SRV" -i "$B" listen <"$WORK/b.in" >"$WORK/b.out" 2>"$WORK/b.err"
PB=$!
wait_registered "$B" "$mark"
spawn 80 "$TCPUNCH" -v -s "$SRV" -i "$A" connect "$B" <"$WORK/a.in" >"$WORK/a.out" 2>"$WORK/a.err"
PA=$!
wait_until 10 grep -q "connected to $B: direct" "$WORK/a.err" || die "alice did not connect directly"
ROOT=$(sed -n "s/.*punch sent: session \([0-9a-f]*\), $A (initiator).*/\1/p" "$SERVER_LOG" | head -n 1)
[ -n "$ROOT" ] || die "no root session id in the server log"
BPORT=$(sed -n "s/.*connected to $B: direct, 127\.0\.0\.1:\([0-9]*\).*/\1/p" "$WORK/a.err" | head -n 1)
sleep 1

# the cut: alice stopped, her end of the connection destroyed (bob gets a reset)
APID=$(under_timeout "$PA")
kill -STOP "$APID"
mark=$(log_mark)
ss -K "( dport = :$BPORT and not sport = :$SERVER_PORT )" >/dev/null 2>&1
wait_until 5 grep -q "connection to $A lost" "$WORK/b.err" || {
    kill -CONT "$APID"
    echo "SKIPPED: ss -K did not cut the connection (no SOCK_DESTROY in this kernel?)" >&2
    exit 77
}
wait_until 10 registered_since "register $B" "$mark" || fail "bob did not register again"

# the stranger, while bob waits for alice
CPORT=$(free_port) || die "no free port"
timeout -k 2 $((COUNT / RATE + 20)) python3 "$ADV/resume_stranger.py" "$SERVER_PORT" "$M" "$B" \
    "$ROOT" "$COUNT" "$RATE" "$CPORT" "$WORK/m.out" 2>"$WORK/m.err" || fail "the stranger failed"
cat "$WORK/m.out" >&2
check "bob was still suspended (not resumed, not ended) during the flood" \
    sh -c "! grep -q 'resumed with $A' '$WORK/b.err' && kill -0 $PB"

kill -CONT "$APID"
wait "$PA"
check_rc "alice: the session ended well" 0 $?
wait "$PB"
check_rc "bob: the session ended well" 0 $?

NREQ=$(grep -c "connect request: $M -> $B, resuming $ROOT" "$SERVER_LOG")
NPUNCH=$(awk '/^punch / {print $2}' "$WORK/m.out")
NREF=$(grep -c "refusing a punch order from $M while resuming the session with $A: it comes from another peer" "$WORK/b.err")
check "the server passed $NREQ of the stranger's $COUNT resume requests on" test "$NREQ" -ge 1
check "bob got them all and refused each ($NREF refused, $NPUNCH introduced)" \
    test "$NREF" -ge 1 -a "$NREF" -eq "${NPUNCH:-0}"
check "bob punched nothing towards the stranger" sh -c "! grep -q 'punching to $M' '$WORK/b.err'"
check "nothing dialled the stranger's endpoint ($(awk '/^dialled/ {print $2}' "$WORK/m.out"))" \
    grep -qx "dialled 0" "$WORK/m.out"
check "alice resumed" grep -q "resumed with $B after" "$WORK/a.err"
AMS=$(sed -n "s/.*resumed with $B after \([0-9]*\) ms.*/\1/p" "$WORK/a.err" | head -n 1)
check "at once once she went on (${AMS:-?} ms: the refused orders held nothing up)" \
    test "${AMS:-99999}" -lt 5000
check "bob resumed" grep -q "resumed with $A after" "$WORK/b.err"
check "one resume only" test "$(grep -c "resumed with $A after" "$WORK/b.err")" -eq 1
same_file "alice's bytes reached bob intact" "$WORK/a.want" "$WORK/b.out"
same_file "bob's bytes reached alice intact" "$WORK/b.want" "$WORK/a.out"
finish
