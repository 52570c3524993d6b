#!/bin/bash
# Hostile clients against one server (hostile.py), all at once: random garbage, a 10 MB line,
# slowloris, 2000 connections that never say hello (the server's VmRSS bounded and back down
# afterwards), every message type malformed, a duplicate id with a wrong key, connect-to-self,
# the per-address cap. During the attack and after it a real pair registers, punches and
# exchanges 1 MiB each way; the server is alive at the end and exits 0 on SIGTERM.
# Loopback only: the attack comes from 127.20.0.0 and up, the real peers from 127.0.0.1.
# Usage: test_hostile.sh TCPUNCH RENDEZVOUS [SANITIZED] (1: a sanitizer build, see hostile.py)
source "$(dirname "$0")/lib.sh" "$@"
SANITIZED=${3:-0}

# 2000 connections need as many descriptors in the server and in hostile.py (+ a margin)
NOFILE_WANT=4096
if [ "$(ulimit -S -n)" != unlimited ] && [ "$(ulimit -S -n)" -lt "$NOFILE_WANT" ]; then
    hard=$(ulimit -H -n)
    [ "$hard" = unlimited ] || [ "$hard" -ge "$NOFILE_WANT" ] || hard_short=1
    if [ -n "${hard_short:-}" ]; then
        if [ "$hard" -lt 2200 ]; then
            echo "SKIPPED: the descriptor hard limit ($hard) is below the 2200 the attack needs"
            exit 77
        fi
        ulimit -S -n "$hard"
    else
        ulimit -S -n "$NOFILE_WANT"
    fi
fi

HELLO_TIMEOUT=3
MAX_PER_IP=16
T0=$(date +%s)

# realistic per-address limits (the attack spreads over many loopback addresses, as a botnet
# would over many hosts), a short hello timeout so that the test is quick and the flood is cut
start_server --hello-timeout "$HELLO_TIMEOUT" --max-per-ip "$MAX_PER_IP" --rate-per-ip 20 \
    --connect-rate 5
# the server itself, not timeout(1), its parent: its memory and its signal
RPID=$(pgrep -P "$SERVER_PID" | head -n 1)
[ -n "$RPID" ] || die "cannot find the rendezvous process under $SERVER_PID"

head -c 1048576 /dev/urandom >"$WORK/a.in"
head -c 1048576 /dev/urandom >"$WORK/b.in"

spawn 90 python3 "$TESTDIR/hostile.py" 127.0.0.1 "$SERVER_PORT" "$RPID" "$WORK" \
    "$HELLO_TIMEOUT" "$MAX_PER_IP" "$SANITIZED" >"$WORK/hostile.log" 2>&1
HPID=$!
# the pair starts once the 2000 silent connections are open; garbage, malformed lines and
# slowloris go on around it until it is done
wait_until 40 test -e "$WORK/attack.peak" || {
    cat "$WORK/hostile.log"
    die "hostile.py never opened its 2000 connections"
}

pair() { # WHEN
    local bid aid
    bid=$(uid "hostile-b")
    aid=$(uid "hostile-a")
    run_pair "$bid" "$aid" "$WORK/a.in" "$WORK/b.in"
    check_rc "$1: a real pair, connect side" 0 "$RC_A"
    check_rc "$1: a real pair, listen side" 0 "$RC_B"
    same_file "$1: 1 MiB a -> b" "$WORK/a.in" "$WORK/b.out"
    same_file "$1: 1 MiB b -> a" "$WORK/b.in" "$WORK/a.out"
    check "$1: punched directly" grep -q "connected to $bid: direct" "$WORK/a.err"
}

pair "during the attack"
touch "$WORK/pair.done"
wait "$HPID"
RC=$?
cat "$WORK/hostile.log"
check_rc "hostile.py (garbage, 10 MB line, slowloris, 2000 silent, malformed, ids, cap)" 0 "$RC"
check "the server survived the attack" kill -0 "$RPID"
check "the server logged hello-timeout drops" grep -q "drop .*hello-timeout" "$SERVER_LOG"
check "the server logged the per-address cap" grep -q "refused .*too-many-connections" "$SERVER_LOG"

pair "after the attack"
check "the server is still alive at the end" kill -0 "$RPID"
kill -TERM "$RPID"
wait_until 10 bash -c "! kill -0 $RPID 2>/dev/null" || fail "the server did not exit 10 s after SIGTERM"
wait "$SERVER_PID"
check_rc "the server exits cleanly on SIGTERM after the attack" 0 $?
check "the whole test took under 60 s" test $(($(date +%s) - T0)) -lt 60
finish
