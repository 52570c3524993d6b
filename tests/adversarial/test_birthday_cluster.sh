#!/usr/bin/env bash
# Birthday plans across cluster instances (Phase 9; PROTOCOL.md sections 16 and 17): a hard
# peer on instance A and an easy one on instance B get the same plan as a local pair — the
# initiator's hello.birthday travels in introduce.birthday, the target's instance plans with its
# own caps (--birthday-k-max 64 on B: K = min(64, hard k) whoever initiates) — and the one plan
# per peer per 10 s holds across instances: B marks its peer, A marks its peer when it forwards
# a planned answer and then sends no caps for it.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/../integration/cluster_lib.sh"

command -v python3 >/dev/null || { echo "SKIPPED: python3 is not installed" >&2; exit 77; }
for a in 127.0.0.2 127.0.0.3 127.0.0.4; do
    python3 -c "import socket; s = socket.socket(); s.bind(('$a', 0))" 2>/dev/null ||
        { echo "SKIPPED: cannot bind $a" >&2; exit 77; }
done

start_redis
PA=$(free_port) || die "no free port"
PB=$(free_port) || die "no free port"
start_inst A --probe-listen "127.0.0.1:$PA"
start_inst B --probe-listen "127.0.0.1:$PB" --birthday-k-max 64
wait_until 10 inst_joined A || die "A did not join"
wait_until 10 inst_joined B || die "B did not join"
timeout -k 2 60 python3 "$(dirname "$0")/birthday_cluster.py" "${INST_PORT[A]}" "$PA" \
    "${INST_PORT[B]}" "$PB" >"$WORK/result" 2>"$WORK/cluster.err" ||
    die "the peers failed (see cluster.err)"
cat "$WORK/result" >&2
res() { awk -v w="$1" '$1 == w { print $2 }' "$WORK/result"; }
# B plans (the target's instance): K = min(64, 200), M = min(1024, 900)
check "hard (A) -> easy (B): the hard copy, forwarded by A (got $(res ab-hard))" \
    [ "$(res ab-hard)" = "hard,target-ok,64,900,0,800,1024-65535,50000" ]
check "... the easy copy (got $(res ab-easy))" \
    [ "$(res ab-easy)" = "easy,target-ok,64,900,0,800,1024-65535,50000" ]
check "the same connect again at once: no plan (got $(res ab-again))" \
    [ "$(res ab-again)" = none/none ]
# A plans now (the target hardb is on A): K = min(256, 100), M = min(1024, 500)
check "easyb (B) -> hardb (A): the easy copy (got $(res ba-easy))" \
    [ "$(res ba-easy)" = "easy,target-ok,100,500,0,800,1024-65535,50000" ]
check "... the hard copy (got $(res ba-hard))" \
    [ "$(res ba-hard)" = "hard,target-ok,100,500,0,800,1024-65535,50000" ]
check "hard (A), planned 1 s ago, -> a fresh easy peer (B): no plan (got $(res ab-recent))" \
    [ "$(res ab-recent)" = none/none ]
check "... which takes part with a fresh hard peer (control; got $(res ab-control))" \
    [ "$(res ab-control)" = "hard,target-ok,64,500,0,800,1024-65535,50000" ]
check "A logged the forwarded plan" grep -q 'birthday: chard.* (hard) <-> ceasy.* (on instance B), K 64, M 900' \
    "$(inst_log A)"
check "B logged its plan" grep -q 'birthday: chard.* (hard, on instance A) <-> ceasy.* (easy), K 64, M 900' \
    "$(inst_log B)"
finish
