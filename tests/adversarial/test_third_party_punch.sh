#!/usr/bin/env bash
# A third party at the responder's punch port, during a punch. fakesrv.py introduces a real
# `listen` (responder) and a real `connect` (initiator) but sends the initiator its punch order
# 2.5 s after the responder's, so the responder punches alone for that long. Meanwhile:
#   - a third party from 127.0.0.2 (a host none of the initiator's candidates is on) connects to
#     the responder's port: it must be closed without a byte (before: it got the responder's
#     shake line, which names the session, both ids and the responder's key);
#   - a third party from 127.0.0.1 (the initiator's host: a stranger behind the same NAT) gets
#     the shake and answers with a valid, signed shake under its own key: that connection must
#     be dropped, not the session (before: SHAKE_REFUSED ended the whole punch, exit 4).
# Then the initiator's punch arrives and its data must go through, both ends exit 0.
source "$(dirname "$0")/../integration/lib.sh" "$@"
ADV=$(cd "$(dirname "$0")" && pwd)
command -v python3 >/dev/null || { echo "SKIPPED: python3 is needed" >&2; exit 77; }
python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.2",0))' 2>/dev/null ||
    { echo "SKIPPED: cannot bind 127.0.0.2" >&2; exit 77; }

FPORT=$(free_port)
spawn 60 python3 "$ADV/fakesrv.py" "$FPORT" "$WORK/fake.log" --initiator-delay 2.5 --lifetime 50
wait_until 5 listening "$FPORT" || die "fakesrv.py does not listen"
: >"$WORK/fake.log"
SRV=127.0.0.1:$FPORT
B=$(uid bob)
A=$(uid alice)
PB=$(free_port)
head -c 300000 /dev/urandom >"$WORK/a.in"
spawn 40 "$TCPUNCH" -s "$SRV" -i "$B" -p "$PB" -t 10 -v listen </dev/null >"$WORK/b.out" \
    2>"$WORK/b.err"
pid_b=$!
wait_until 10 grep -q "hello $B main" "$WORK/fake.log" || die "the listen did not register"
wait_until 5 listening "$PB" || true
spawn 40 "$TCPUNCH" -s "$SRV" -i "$A" -t 10 -v connect "$B" <"$WORK/a.in" >"$WORK/a.out" \
    2>"$WORK/a.err"
pid_a=$!
wait_until 10 grep -q "punch $B responder" "$WORK/fake.log" || die "no punch order for $B"
sleep 0.2
timeout 10 python3 "$ADV/thirdparty.py" quiet 127.0.0.2 "$PB" "$WORK/t1.json"
timeout 10 python3 "$ADV/thirdparty.py" forge 127.0.0.1 "$PB" "$WORK/t2.json"
cp "$WORK/fake.log" "$WORK/fake.log.t"
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }
check "third party from 127.0.0.2 reached the punch port" test "$(field "$WORK/t1.json" connected)" = True
check "third party from 127.0.0.2 received no byte (got $(field "$WORK/t1.json" bytes))" \
    test "$(field "$WORK/t1.json" bytes)" -eq 0
check "third party from 127.0.0.2 was closed at once" test "$(field "$WORK/t1.json" closed)" = True
check "the initiator's punch order had not come yet when the third parties were done" \
    sh -c "! grep -q 'punch $A initiator' '$WORK/fake.log.t'"

wait "$pid_a"
RC_A=$?
wait "$pid_b"
RC_B=$?
check_rc "connect after the third parties" 0 "$RC_A"
check_rc "listen after the third parties" 0 "$RC_B"
same_file "alice -> bob, after the third parties" "$WORK/a.in" "$WORK/b.out"
# the forging third party (same host as the initiator) must have had its say and been dropped
check "the same-host third party got the shake and sent a forged one" \
    test "$(field "$WORK/t2.json" forged)" = True
check "the forged shake was refused loudly by the responder" \
    grep -q "PEER KEY MISMATCH" "$WORK/b.err"
finish
