#!/usr/bin/env bash
# Birthday plans (Phase 9, PROTOCOL.md section 17) at a real server, and their rate: peers made
# to look hard (probe from another port: mapping dependent) and easy (probe from the control
# connection's port, each from its own loopback address) get a plan in both punches, with the
# roles, targets, K = min(--birthday-k-max, hard k) and M = min(cap, easy m); a hostile peer
# re-issuing connect cannot make its partner send another 1536 SYNs: within 10 s of a plan
# neither peer gets another (the ordinary punch instead, relay offered), while other peers still
# do; after 10 s a plan again. (On loopback no peer can use the plan: the decision is tested.)
source "$(dirname "$0")/../integration/lib.sh"

command -v python3 >/dev/null || { echo "SKIPPED: python3 is not installed" >&2; exit 77; }
for a in 127.0.0.2 127.0.0.3; do
    python3 -c "import socket; s = socket.socket(); s.bind(('$a', 0))" 2>/dev/null ||
        { echo "SKIPPED: cannot bind $a" >&2; exit 77; }
done

PROBE=$(free_port) || die "no free port"
start_server --probe-listen "127.0.0.1:$PROBE" --birthday-k-max 128
timeout -k 2 60 python3 "$(dirname "$0")/birthday_plan.py" "$SERVER_PORT" "$PROBE" \
    >"$WORK/result" 2>"$WORK/plan.err" || die "the peers failed (see plan.err)"
cat "$WORK/result" >&2
res() { awk -v w="$1" '$1 == w { print $2 }' "$WORK/result"; }

check "the hard peer's probe says dependent (got $(res mapping-hard))" \
    [ "$(res mapping-hard)" = dependent ]
check "the easy peer's probe says independent (got $(res mapping-easy))" \
    [ "$(res mapping-easy)" = independent ]
# role, target = the other's observed endpoint, K = min(128, 200), M = min(1024, 900), fixed parts
want_h="hard,target-ok,128,900,0,800,1024-65535,50000"
want_e="easy,target-ok,128,900,0,800,1024-65535,50000"
check "hard -> easy: the hard copy (got $(res plan-hard))" [ "$(res plan-hard)" = "$want_h" ]
check "hard -> easy: the easy copy (got $(res plan-easy))" [ "$(res plan-easy)" = "$want_e" ]
check "the plan is direct (got $(res plan-direct))" [ "$(res plan-direct)" = yes ]
check "the relay is still offered, the fallback (got $(res plan-relay))" \
    [ "$(res plan-relay)" = yes ]
check "3 re-issued connects and one back within 10 s: no plan (got $(res again))" \
    [ "$(res again)" = none ]
check "another easy peer to the same hard peer within 10 s: no plan (got $(res other))" \
    [ "$(res other)" = none/none ]
check "... but to a fresh hard peer: a plan, K = min(128, 64), M = min(1024, 1024) (got $(res fresh-hard))" \
    [ "$(res fresh-hard)" = "hard,target-ok,64,1024,0,800,1024-65535,50000" ]
check "... whose easy copy matches (got $(res fresh-easy))" \
    [ "$(res fresh-easy)" = "easy,target-ok,64,1024,0,800,1024-65535,50000" ]
check "a hard peer without hello.birthday: no plan (got $(res nocaps))" \
    [ "$(res nocaps)" = none/none ]
check "after 10 s a plan again (got $(res later-hard))" [ "$(res later-hard)" = "$want_h" ]
check "... both copies (got $(res later-easy))" [ "$(res later-easy)" = "$want_e" ]
n=$(grep -c 'birthday: hard.* (hard) <-> easy.* (easy), K 128, M 900' "$SERVER_LOG")
check "the server logged each plan at info level (2 for hard/easy, got $n)" [ "$n" = 2 ]
n=$(grep -c ': birthday: ' "$SERVER_LOG")
check "and no other plan but the fresh pair's (3 in all, got $n)" [ "$n" = 3 ]
finish
