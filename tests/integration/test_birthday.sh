#!/bin/bash
# Birthday punching wired end to end on loopback, where no NAT is in the way. A fake server
# (tests/adversarial/fakesrv.py) offers "birthday", says by the probe that alice's NAT maps per
# destination and bob's does not, and plans a birthday punch for their introduction: alice
# (connect, hard) opens 4 sockets towards bob's punch port, bob (listen, easy) sends one guess
# at port 1 of alice's address (refused). With no NAT, alice's sockets reach bob's shared
# listener: alice's engine hands her completed sockets to the punch, bob routes the inbound ones
# to the birthday session (it has no IPv4 candidate), and the handshake picks one. The data
# then flows both ways; alice's `connected` event says via "birthday", which socket of how many;
# bob's path line says inbound. (The lab's scenarios o, p and q are the real proof: there the
# guesses meet the hard NAT's mappings.)
source "$(dirname "$0")/lib.sh" "$@"
# birthday targets on loopback are refused unless this test-only switch is set (tcpunch(1))
export TCPUNCH_TEST_BIRTHDAY_LOOPBACK=1
ADV=$(cd "$TESTDIR/../adversarial" && pwd)
command -v python3 >/dev/null || { echo "SKIPPED: python3 is needed" >&2; exit 77; }

A=$(uid alice)
B=$(uid bob)
FPORT=$(free_port)
PPORT=$(free_port)
spawn 40 python3 "$ADV/fakesrv.py" "$FPORT" "$WORK/fake.log" --features birthday \
    --probe-port "$PPORT" --mapping "$A=dependent" --mapping "$B=independent" --birthday 8 \
    --lifetime 35
wait_until 5 listening "$FPORT" || die "fakesrv.py does not listen"
wait_until 5 listening "$PPORT" || die "fakesrv.py's probe port does not listen"
SRV=127.0.0.1:$FPORT
head -c 200000 /dev/urandom >"$WORK/a.in"
head -c 200000 /dev/urandom >"$WORK/b.in"

spawn 30 "$TCPUNCH" -s "$SRV" -i "$B" -t 5 -v listen <"$WORK/b.in" >"$WORK/b.out" 2>"$WORK/b.err"
pid_b=$!
wait_until 10 grep -q "probe $B independent" "$WORK/fake.log" || die "bob did not register and probe"
spawn 30 "$TCPUNCH" -s "$SRV" -i "$A" -t 5 -v --json --birthday-k 4 connect "$B" \
    <"$WORK/a.in" >"$WORK/a.out" 2>"$WORK/a.err"
pid_a=$!
wait "$pid_a"
RC_A=$?
wait "$pid_b"
RC_B=$?
check_rc "alice (hard, connect)" 0 "$RC_A"
check_rc "bob (easy, listen)" 0 "$RC_B"
same_file "alice -> bob" "$WORK/a.in" "$WORK/b.out"
same_file "bob -> alice" "$WORK/b.in" "$WORK/a.out"
check "both announced birthday punching (alice with her --birthday-k 4)" \
    sh -c "grep -q 'hello $A [a-z]* .* birthday=4/1024' '$WORK/fake.log' &&
           grep -q 'hello $B main .* birthday=256/1024' '$WORK/fake.log'"
check "alice took the hard role, her k capped from 8 to 4" \
    grep -q 'we are the hard side, 4 sockets towards 127.0.0.1' "$WORK/a.err"
check "bob took the easy role" grep -q 'we are the easy side, 1 guess at ports 1-1 of 127.0.0.1' "$WORK/b.err"
check "alice's punching event names her birthday role" \
    grep -q '"event":"punching".*"birthday":"hard"' "$WORK/a.err"
ev=$(grep '"event":"connected"' "$WORK/a.err")
check "alice's connected event: direct, via birthday, socket I of 4 ($ev)" \
    python3 -c '
import json, sys
e = json.loads(sys.argv[1])
assert e["path"] == "direct" and e["via"] == "birthday", e
assert e["guesses"] is None and 1 <= e["socket"] <= 4 and e["of"] == 4, e
assert e["attempts"] >= 4 and e["reason"] is None, e' "$ev"
check "bob's path line: direct, inbound (alice's socket reached his listener)" \
    grep -qE "connected to $A: direct, 127\.0\.0\.1:[0-9]+ \(inbound\)" "$WORK/b.err"
finish
