#!/usr/bin/env bash
# A lying server against a suspended responder (docs/design/resume.md 4.5, 4.8). fakesrv.py
# offers resume and, once the responder (rlinkdrv: one resume attempt, peer_resume_link) has
# registered, sends it resume punch orders it must turn away before dialling anything: one
# with no resume root (a fresh session), one of another session, one from another peer id,
# one with another key than the session's peer's, one with the wrong role. Each names a
# candidate endpoint where a listener counts connections: none may come. Then a valid order
# names another listener, which must be dialled (so the counting would have seen a dial), and
# a newer valid order a third one: it replaces the one being punched (the peer asked again).
source "$(dirname "$0")/../integration/lib.sh" "$@"
ADV=$(cd "$(dirname "$0")" && pwd)
command -v python3 >/dev/null || { echo "SKIPPED: python3 is needed" >&2; exit 77; }
DRV_BIN=${3:-$(dirname "$TCPUNCH_BIN")/tests/integration/rlinkdrv}
[ -x "$DRV_BIN" ] || { echo "SKIPPED: no rlinkdrv next to tcpunch ($DRV_BIN)" >&2; exit 77; }
DRV=$WORK/rlinkdrv
peer_home_wrapper "$DRV_BIN" "$DRV"

A=$(uid alice) # the session's initiator (the orders' sender, as the server claims)
B=$(uid bob)   # the suspended responder
KA=$("$TCPUNCH" -i "$A" id | awk '/^key:/ {print $2}')
KM=$("$TCPUNCH" -i "$(uid mallory)" id | awk '/^key:/ {print $2}')
[ -n "$KA" ] && [ -n "$KM" ] || die "no identity keys"
ROOT=0123456789abcdef0123456789abcdef
RS=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')

# counter PORT FILE: accepts on 127.0.0.1:PORT for 20 s, FILE holds how many came
counter() {
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
PNEW=$(free_port) || die "no free port"
counter "$PNEW" "$WORK/new.count"
wait_until 5 listening "$PBAD" && wait_until 5 listening "$PGOOD" && wait_until 5 listening "$PNEW" ||
    die "no counters"

order() { # FILE PEER ROLE RESUME KEY PORT
    printf '{"peer":"%s","role":"%s","resume":"%s","key":"%s","observed":"127.0.0.1:%s"}\n' \
        "$2" "$3" "$4" "$5" "$6" >"$1"
}
order "$WORK/p1.json" "$A" responder "" "$KA" "$PBAD"
order "$WORK/p2.json" "$A" responder fedcba9876543210fedcba9876543210 "$KA" "$PBAD"
order "$WORK/p3.json" "$(uid eve)" responder "$ROOT" "$KA" "$PBAD"
order "$WORK/p4.json" "$A" responder "$ROOT" "$KM" "$PBAD"
order "$WORK/p5.json" "$A" initiator "$ROOT" "$KA" "$PBAD"
order "$WORK/p6.json" "$A" responder "$ROOT" "$KA" "$PGOOD"
order "$WORK/p7.json" "$A" responder "$ROOT" "$KA" "$PNEW"
# fakesrv.py's --punch JSON is merged into its punch, so "resume":"" must not be sent: drop it
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d.pop("resume"); json.dump(d, open(sys.argv[1], "w"))' \
    "$WORK/p1.json"

FPORT=$(free_port) || die "no free port"
P=()
for i in 1 2 3 4 5 6 7; do P+=(--punch "$B=$WORK/p$i.json"); done
spawn 40 python3 "$ADV/fakesrv.py" "$FPORT" "$WORK/fake.log" --features resume \
    --punch-delay 0.5 --punch-gap 0.4 "${P[@]}" --lifetime 30
wait_until 5 listening "$FPORT" || die "fakesrv.py does not listen"
timeout -k 2 30 "$DRV" -v -s "127.0.0.1:$FPORT" -i "$B" responder "$ROOT" "$A" "$KA" "$RS" 0 1 6 \
    >"$WORK/r.out" 2>"$WORK/r.err"
RC=$?
check "the responder registered its id (not aux)" grep -q "hello $B main" "$WORK/fake.log"
check "all seven orders were sent" test "$(grep -c "^punch $B" "$WORK/fake.log")" -eq 7
for why in "it resumes no session" "it resumes another session" "it comes from another peer" \
    "its key is not the session's peer's" "its role is not ours in the session"; do
    check "refused: $why" grep -q "refusing a punch order .*: $why" "$WORK/r.err"
done
check "no refused order was dialled ($(cat "$WORK/bad.count") connections)" \
    test "$(cat "$WORK/bad.count")" -eq 0
check "the valid order was dialled ($(cat "$WORK/good.count") connections)" \
    test "$(cat "$WORK/good.count")" -gt 0
check "the newer valid order replaced it" grep -q "a newer resume order from $A replaces" "$WORK/r.err"
check "and was dialled ($(cat "$WORK/new.count") connections)" test "$(cat "$WORK/new.count")" -gt 0
check "the attempt did not resume (nobody ran the resume lines): rc $RC" test "$RC" -ne 0
finish
