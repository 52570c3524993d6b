#!/usr/bin/env bash
# A REPLAYED resume (docs/design/resume.md 4.8, issue 15 attack tests): a suspended responder
# dials what a lying server names as its peer (resume_lines.py, an attacker that knows all a
# relay or server sees). On the first connection the attacker plays back the initiator's
# `resume` line recorded in an earlier attempt of the same session: the same S (the server
# chose it again), root, epoch, ids, and a MAC_I that verified then, under the real RS. It is
# over the responder's fresh key of that attempt, so it must not verify now: the connection is
# dropped without a `resumed`, the punch goes on, and its other candidate's connection, answered
# with the line the real initiator would send (MAC_I under RS over its keys), resumes.
source "$(dirname "$0")/../integration/lib.sh" "$@"
MODE=${RESUME_ATTACK:-replay}
WHY=${RESUME_WHY:-"the resume's MAC does not verify"}
ADV=$(cd "$(dirname "$0")" && pwd)
command -v python3 >/dev/null || { echo "SKIPPED: python3 is needed" >&2; exit 77; }
DRV_BIN=${3:-$(dirname "$TCPUNCH_BIN")/tests/integration/rlinkdrv}
[ -x "$DRV_BIN" ] || { echo "SKIPPED: no rlinkdrv next to tcpunch ($DRV_BIN)" >&2; exit 77; }
DRV=$WORK/rlinkdrv
peer_home_wrapper "$DRV_BIN" "$DRV"

A=$(uid alice) # the session's initiator (the orders' sender, as the server claims)
B=$(uid bob)   # the suspended responder
KA=$("$TCPUNCH" -i "$A" id | awk '/^key:/ {print $2}')
[ -n "$KA" ] || die "no identity key"
ROOT=0123456789abcdef0123456789abcdef
S=00112233445566778899aabbccddeeff
RS=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')

PATT=$(free_port) || die "no free port"
PVAL=$(free_port) || die "no free port"
spawn 25 python3 "$ADV/resume_lines.py" "$PATT" "$PVAL" "$MODE" "$RS" "$ROOT" "$A" "$B" "$WORK/att.out"
wait_until 5 listening "$PATT" && wait_until 5 listening "$PVAL" || die "resume_lines.py does not listen"
printf '{"peer":"%s","role":"responder","resume":"%s","key":"%s","session":"%s","observed":"127.0.0.1:%s","endpoints":["127.0.0.1:%s"]}\n' \
    "$A" "$ROOT" "$KA" "$S" "$PATT" "$PVAL" >"$WORK/p.json"
FPORT=$(free_port) || die "no free port"
spawn 40 python3 "$ADV/fakesrv.py" "$FPORT" "$WORK/fake.log" --features resume \
    --punch-delay 0.5 --punch "$B=$WORK/p.json" --lifetime 30
wait_until 5 listening "$FPORT" || die "fakesrv.py does not listen"
timeout -k 2 30 "$DRV" -v -s "127.0.0.1:$FPORT" -i "$B" responder "$ROOT" "$A" "$KA" "$RS" 77 2 15 \
    >"$WORK/r.out" 2>"$WORK/r.err"
RC=$?
sleep 0.3
cat "$WORK/att.out" >&2
check "the responder took the order and dialled us" grep -q "^conn 1 " "$WORK/att.out"
check "the first connection carried the $MODE attack, for our S, epoch 3" \
    grep -q "^conn 1 $MODE offer-epoch 3 $S " "$WORK/att.out"
check "the $MODE line was refused: dropped without a resumed" \
    grep -Eq "^conn 1 $MODE .* (closed|timeout)\$" "$WORK/att.out"
check "the responder says why: $WHY" grep -q "dropping a connection .*: $WHY" "$WORK/r.err"
check "the punch went on: a later connection resumed (MAC_R verified)" \
    grep -Eq "^conn 2 valid .* resumed-ok\$" "$WORK/att.out"
check_rc "the responder resumed on it" 0 "$RC"
check "at epoch 3, with the rx the valid line gave" grep -q "rc=0 epoch=3 peer_rx=0 " "$WORK/r.out"
finish
