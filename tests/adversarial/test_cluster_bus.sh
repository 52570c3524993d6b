#!/bin/bash
# The cluster bus (red-team item 5): whoever can PUBLISH on the cluster's Redis spoke for every
# instance. A forged answer with an embedded newline put any lines (errors, punches) into an
# initiator's connection; a forged introduce made a target punch an attacker-chosen peer and
# endpoint; a captured genuine message could be published again. Defences: every message
# carries a MAC under --cluster-secret-file over the channel and the JSON, which holds its
# sender and a growing timestamp (stale or replayed: refused); strict shapes; an answer only
# from the instance asked, as one punch of that session and target or an allowlisted error;
# introduce candidates pass the server's candidate check. Also (item 10): the lines after a
# hello that waits for the Redis claim are served only after it. A real redis-server on loopback.
source "$(dirname "$0")/../integration/lib.sh" "$@"
command -v redis-server >/dev/null && command -v redis-cli >/dev/null || {
    echo "SKIPPED: redis-server or redis-cli is not installed" >&2
    exit 77
}
source "$TESTDIR/cluster_lib.sh"
FORGE=$(dirname "$0")/busforge.py
PFX=tcpunch:
rcli() { timeout 5 redis-cli -p "$REDIS_PORT" "$@"; }
no_injected() { ! grep -q INJECTED "$1"; }

# secure by default: no cluster without its secret (exit 1), an empty secret file is exit 3
if [ ${#CLUSTER_ARGS[@]} -gt 0 ]; then
    timeout 5 "$RENDEZVOUS" -l "127.0.0.1:$(free_port)" --redis 127.0.0.1:1 --public-address 127.0.0.1:1 \
        >/dev/null 2>"$WORK/opt.err"
    check_rc "--redis without --cluster-secret-file" 1 $?
    check "  ... says why" grep -q -- "--redis needs --cluster-secret-file" "$WORK/opt.err"
    : >"$WORK/empty.secret"
    timeout 5 "$RENDEZVOUS" -l "127.0.0.1:$(free_port)" --redis 127.0.0.1:1 --public-address 127.0.0.1:1 \
        --cluster-secret-file "$WORK/empty.secret" >/dev/null 2>"$WORK/opt.err"
    check_rc "an empty --cluster-secret-file" 3 $?
fi

head -c 65536 /dev/urandom >"$WORK/a.in"
head -c 65536 /dev/urandom >"$WORK/b.in"
start_redis
start_inst A
start_inst B
wait_until 5 inst_joined A || die "instance A did not join"
wait_until 5 inst_joined B || die "instance B did not join"

# forged_answer LABEL [SECRET]: the directory sends a connect from A to "ghost", whose channel
# the attacker reads; it answers A itself with two injected error lines in one "line"
forged_answer() {
    local label=$1 ghost victim mark rc
    shift
    ghost=$(uid ghost) victim=$(uid victim)
    rcli SET "${PFX}peer:$ghost" ghost EX 60 >/dev/null
    mark=$(inst_mark A)
    timeout -k 2 25 python3 "$FORGE" answer "$REDIS_PORT" "$PFX" A ghost "$@" >"$WORK/f.out" &
    local fpid=$! l=
    BG_PIDS+=("$fpid")
    wait_until 10 grep -q READY "$WORK/f.out" || die "$label: the attacker never subscribed"
    timeout -k 2 20 "$TCPUNCH" -s "127.0.0.1:${INST_PORT[A]}" -i "$victim" connect "$ghost" \
        </dev/null >/dev/null 2>"$WORK/victim.err"
    rc=$?
    wait "$fpid"
    l=$(tail -n 1 "$WORK/f.out")
    check "$label: the attacker answered the introduction ($l)" [ "${l%% *}" = FORGED ]
    check "$label: the victim received no injected line" no_injected "$WORK/victim.err"
    check "$label: the victim got the timeout of the silent instance (exit $rc)" \
        grep -q "which did not answer within" "$WORK/victim.err"
    check "$label: A logged the rejection" inst_says A "$mark" "bus message on ${PFX}inst:A rejected"
}

forged_answer "unsigned forged answer"

# ---- a forged introduce: "mallory" at the attacker's endpoint, for a target registered on B
target=$(uid target)
listen_on B "$target" "$WORK/t.out" "$WORK/t.err"
tpid=$LISTEN_PID
atk=$(free_port) || die "no free port"
timeout -k 2 15 python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8); s.settimeout(6)
try:
    s.accept(); print("DIALED")
except socket.timeout:
    print("QUIET")
' "$atk" >"$WORK/atk.out" 2>&1 &
apid=$!
BG_PIDS+=("$apid")
wait_until 5 listening "$atk" || die "the attacker's listener does not listen"
mark=$(inst_mark B)
out=$(timeout 10 python3 "$FORGE" introduce "$REDIS_PORT" "$PFX" B "$target" "127.0.0.1:$atk")
check "forged introduce published to B ($out)" [ "${out##* }" = 1 ]
wait "$apid"
check "forged introduce: the target never dialled the attacker's endpoint ($(cat "$WORK/atk.out"))" \
    grep -q QUIET "$WORK/atk.out"
check "forged introduce: B punched nobody for mallory" \
    sh -c "! tail -c +$((mark + 1)) '$(inst_log B)' | grep -q 'punch sent: .*mallory'"
check "forged introduce: B logged the rejection" inst_says B "$mark" "bus message on ${PFX}inst:B rejected"
kill "$tpid" 2>/dev/null
wait "$tpid" 2>/dev/null

# ---- an insider's forgeries (the secret is known, only the strict checks stand): a correctly
# signed answer with an embedded newline, a code no instance sends, a link-local candidate
if [ ${#CLUSTER_ARGS[@]} -gt 0 ]; then
    forged_answer "signed answer with two lines" "$CLUSTER_SECRET"
    check "signed answer: refused as not one punch" \
        grep -q "rejected: from ghost: answer for session [0-9a-f]*: " "$(inst_log A)"
    check "signed answer: the unknown error code refused" \
        grep -q "error code INJECTED-CODE, which instances do not send" "$(inst_log A)"
    target=$(uid target2)
    listen_on B "$target" "$WORK/t.out" "$WORK/t.err"
    tpid=$LISTEN_PID
    mark=$(inst_mark B)
    timeout 10 python3 "$FORGE" introduce "$REDIS_PORT" "$PFX" B "$target" "169.254.7.7:4000" \
        "$CLUSTER_SECRET" >/dev/null
    if wait_until 5 inst_says B "$mark" "rejected: from nowhere: .*169\.254\.7\.7:4000 is a link-local"; then
        pass "signed introduce with a link-local candidate: refused"
    else
        fail "signed introduce with a link-local candidate: not refused"
    fi
    check "signed introduce: B punched nobody for mallory" \
        sh -c "! tail -c +$((mark + 1)) '$(inst_log B)' | grep -q 'punch sent: .*mallory'"
    # signed with another secret: the MAC does not verify
    head -c 32 /dev/urandom >"$WORK/wrong.secret"
    mark=$(inst_mark B)
    timeout 10 python3 "$FORGE" introduce "$REDIS_PORT" "$PFX" B "$target" "127.0.0.1:9" \
        "$WORK/wrong.secret" >/dev/null
    if wait_until 5 inst_says B "$mark" "rejected: bad MAC"; then
        pass "an introduce signed with another secret: refused (bad MAC)"
    else
        fail "an introduce signed with another secret: not refused for its MAC"
    fi
    kill "$tpid" 2>/dev/null
    wait "$tpid" 2>/dev/null
fi

# ---- a genuine introduction A -> B still works; its introduce, captured and published again
# (and on A's channel: the MAC covers the channel, so it cannot be moved either)
markA=$(inst_mark A)
timeout -k 2 25 python3 "$FORGE" replay "$REDIS_PORT" "$PFX" B A >"$WORK/r.out" &
rpid=$!
BG_PIDS+=("$rpid")
wait_until 10 grep -q READY "$WORK/r.out" || die "the replayer never subscribed"
mark=$(inst_mark B)
cross_pair A B "a genuine introduction across instances"
wait "$rpid"
l=$(tail -n 1 "$WORK/r.out")
session=$(echo "$l" | cut -d' ' -f2)
check "the genuine introduce was captured and published again ($l)" \
    [ "$(echo "$l" | cut -d' ' -f1)" = REPLAYED ]
sleep 1
n=$(inst_since B "$mark" | grep -c "punch sent: session $session,")
check "the replayed introduce punched nothing more (B sent $n punch line(s) for $session)" [ "$n" = 1 ]
check "B logged the replay" inst_says B "$mark" "rejected: .*a replay"
check "A refused the copy moved to its channel" inst_says A "$markA" "rejected: bad MAC"
check "A answered nothing for the moved copy" \
    sh -c "! tail -c +$((markA + 1)) '$(inst_log A)' | grep -q 'punch sent: session $session,.*initiator, on instance'"
# ---- a hello waiting for its claim holds what follows it (PROTOCOL.md, Cluster): a ping sent
# in the same segment is answered after the welcome, not while Redis decides
order=$(timeout 15 python3 "$FORGE" hold "${INST_PORT[A]}" - "$(uid holder)")
check "a line after a claiming hello waits for the verdict (got: $order)" [ "$order" = "welcome pong" ]

check "both instances are still running" kill -0 "${INST_PID[A]}" "${INST_PID[B]}"
finish
