#!/usr/bin/env bash
# test_resume_refused.sh's lying server against the other side: a suspended INITIATOR (rlinkdrv,
# one attempt: an auxiliary registration, connect.resume). Its punch orders are the server's
# word only, like the responder's: one with no resume root, one of another session, one from
# another peer id, one with another key than the session's peer's, one with the wrong role
# (responder) must each be turned away before anything is dialled (a server-controlled
# punch.resume must not make us dial a third party). Then a valid order names another
# listener, which must be dialled (so the counting would have seen a dial).
source "$(dirname "$0")/../integration/lib.sh" "$@"
ADV=$(cd "$(dirname "$0")" && pwd)
command -v python3 >/dev/null || { echo "SKIPPED: python3 is needed" >&2; exit 77; }
DRV_BIN=${3:-$(dirname "$TCPUNCH_BIN")/tests/integration/rlinkdrv}
[ -x "$DRV_BIN" ] || { echo "SKIPPED: no rlinkdrv next to tcpunch ($DRV_BIN)" >&2; exit 77; }
DRV=$WORK/rlinkdrv
peer_home_wrapper "$DRV_BIN" "$DRV"

A=$(uid alice) # the suspended initiator
B=$(uid bob)   # the session's responder (the orders' peer, as the server claims)
KB=$("$TCPUNCH" -i "$B" id | awk '/^key:/ {print $2}')
KM=$("$TCPUNCH" -i "$(uid mallory)" id | awk '/^key:/ {print $2}')
[ -n "$KB" ] && [ -n "$KM" ] || die "no identity keys"
ROOT=0123456789abcdef0123456789abcdef
RS=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')

counter() { # PORT FILE: accepts on 127.0.0.1:PORT for 20 s, FILE holds how many came
    spawn 25 python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16); s.settimeout(0.2)
n, end = 0, time.time() + 20
open(sys.argv[2], "w").write("0")
while time.time() < end:
    try:
        c, _ = s.accept()
    except socket.timeout:
        continue
    n += 1
    open(sys.argv[2], "w").write(str(n))
    c.close()
' "$1" "$2"
}
PBAD=$(free_port) || die "no free port"
counter "$PBAD" "$WORK/bad.count"
PGOOD=$(free_port) || die "no free port"
counter "$PGOOD" "$WORK/good.count"
wait_until 5 listening "$PBAD" && wait_until 5 listening "$PGOOD" || die "no counters"

order() { # FILE PEER ROLE RESUME KEY PORT
    printf '{"peer":"%s","role":"%s","resume":"%s","key":"%s","observed":"127.0.0.1:%s"}\n' \
        "$2" "$3" "$4" "$5" "$6" >"$1"
}
order "$WORK/p1.json" "$B" initiator "" "$KB" "$PBAD"
order "$WORK/p2.json" "$B" initiator fedcba9876543210fedcba9876543210 "$KB" "$PBAD"
order "$WORK/p3.json" "$(uid eve)" initiator "$ROOT" "$KB" "$PBAD"
order "$WORK/p4.json" "$B" initiator "$ROOT" "$KM" "$PBAD"
order "$WORK/p5.json" "$B" responder "$ROOT" "$KB" "$PBAD"
order "$WORK/p6.json" "$B" initiator "$ROOT" "$KB" "$PGOOD"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d.pop("resume"); json.dump(d, open(sys.argv[1], "w"))' \
    "$WORK/p1.json"

FPORT=$(free_port) || die "no free port"
P=()
for i in 1 2 3 4 5 6; do P+=(--punch "$A=$WORK/p$i.json"); done
spawn 40 python3 "$ADV/fakesrv.py" "$FPORT" "$WORK/fake.log" --features resume --punch-aux yes \
    --punch-delay 0.5 --punch-gap 0.4 "${P[@]}" --lifetime 30
wait_until 5 listening "$FPORT" || die "fakesrv.py does not listen"
timeout -k 2 30 "$DRV" -v -s "127.0.0.1:$FPORT" -i "$A" initiator "$ROOT" "$B" "$KB" "$RS" 0 1 6 \
    >"$WORK/i.out" 2>"$WORK/i.err"
RC=$?
check "the initiator registered an auxiliary connection" grep -q "hello $A aux" "$WORK/fake.log"
check "it asked with connect.resume" grep -q "connect $A $B" "$WORK/fake.log"
check "all six orders were sent" test "$(grep -c "^punch $A" "$WORK/fake.log")" -eq 6
for why in "it resumes no session" "it resumes another session" "it comes from another peer" \
    "its key is not the session's peer's" "its role is not ours in the session"; do
    check "refused: $why" grep -q "refusing a punch order .*: $why" "$WORK/i.err"
done
check "no refused order was dialled ($(cat "$WORK/bad.count") connections)" \
    test "$(cat "$WORK/bad.count")" -eq 0
check "the valid order was dialled ($(cat "$WORK/good.count") connections)" \
    test "$(cat "$WORK/good.count")" -gt 0
check "the attempt did not resume (nobody ran the resume lines): rc $RC" test "$RC" -ne 0
finish
