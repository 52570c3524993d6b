#!/usr/bin/env bash
# A stranger overflows the victim's prefill through the relay's early bytes (issue 12, section 1).
#
# The stranger (relay_overflow.py, on advpeer.py) registers under its own key, asks the server
# for the victim, takes the victim's handshake offer from its punch port, signs a genuine
# initiator shake and parks it in the relay with ~8 KB of garbage behind it. When the victim
# opens the relay (--direct-timeout 1) it gets `relayed`, the signed line and the garbage at
# once. The code before the fix read all of it with the relay line and copied everything behind
# the handshake into the 4 KiB link prefill: a stack overflow in `listen` (heap in --forward).
#
# The victim must neither crash nor report a memory error, and must not pass the garbage on as
# the peer's data:
#   1. tcpunch listen (three times): exits 5 (the stream fails authentication), nothing on stdout, no
#      sanitizer report or stack-smashing abort;
#   2. tcpunch listen --forward (with --allow for each stranger, so that the sessions are
#      taken), attacked three times: still running after each, nothing reached the forwarded service, no report; it then ends
#      on SIGTERM like any listen --forward.
source "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh" "$@"

if ! command -v python3 >/dev/null 2>&1; then
    echo "SKIPPED: python3 is not installed" >&2
    exit 77
fi
if ! python3 -c 'import ctypes.util, sys; sys.exit(0 if ctypes.util.find_library("sodium") else 1)'; then
    echo "SKIPPED: libsodium is not loadable from Python (ctypes)" >&2
    exit 77
fi

EARLY=8000
ADV=$TESTDIR/../adversarial
REPORT_RE='AddressSanitizer|LeakSanitizer|runtime error:|stack smashing|buffer overflow detected|corrupted|Segmentation'

start_server

# attack VICTIM_ID ATTACKER_ID: runs the stranger; dies unless the attack was delivered
attack() {
    timeout -k 2 60 python3 "$ADV/relay_overflow.py" "$SERVER_PORT" "$1" "$2" "$EARLY" "$WORK" \
        >"$WORK/attacker.log" 2>&1
    local rc=$?
    if [ $rc -ne 0 ]; then
        cat "$WORK/attacker.log" "$WORK/attacker.json" >&2 2>/dev/null
        die "the attack could not be delivered (relay_overflow.py exit $rc)"
    fi
    pass "a signed handshake and $EARLY garbage bytes were parked in the relay for $1"
    # the precondition of the overflow: the victim took the stranger's line on the relay
    if python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))["confirm"] else 1)' \
        "$WORK/attacker.json"; then
        pass "$1 confirmed the stranger's handshake on the relay (the bytes behind it are data)"
    else
        fail "$1 did not confirm the stranger's handshake: the attack did not reach the overflow"
    fi
}

no_report() { # DESCRIPTION FILE
    if grep -Eq "$REPORT_RE" "$2"; then
        fail "$1: $(grep -Em1 "$REPORT_RE" "$2")"
    else
        pass "$1"
    fi
}

# The server writes `relayed` and the early bytes back to back; the code before the fix read the
# garbage with the relay line only when both had arrived by its read (most runs, not all). Each
# scenario is therefore attacked ROUNDS times: the old code fails at least one of them.
ROUNDS=3

# ---- 1. listen ----
for round in $(seq 1 $ROUNDS); do
    victim=$(uid bob)
    stranger=$(uid mallory)
    mark=$(log_mark)
    spawn 60 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$victim" --direct-timeout 1 listen \
        </dev/null >"$WORK/b$round.out" 2>"$WORK/b$round.err"
    pid_b=$!
    wait_registered "$victim" "$mark"
    attack "$victim" "$stranger"
    wait "$pid_b"
    rc=$?
    if [ $rc -ge 124 ]; then
        fail "listen (round $round) ended abnormally: exit $rc (timeout 124, signal 128+N)"
    else
        check_rc "listen (round $round): the garbage behind the handshake fails the stream" 5 "$rc"
    fi
    no_report "listen (round $round): no memory error report" "$WORK/b$round.err"
    if [ -s "$WORK/b$round.out" ]; then
        fail "listen (round $round) wrote $(stat -c %s "$WORK/b$round.out") bytes of the stranger's garbage to stdout"
    else
        pass "listen (round $round): nothing of the garbage reached stdout"
    fi
done

# ---- 2. listen --forward: one victim, a stranger per round (each one --allow'ed) ----
victim=$(uid fwd)
strangers=()
allow=()
for round in $(seq 1 $ROUNDS); do
    strangers+=("$(uid mallory)")
    allow+=(--allow "${strangers[-1]}")
done
sink_port=$(free_port) || die "no free port"
# the forwarded service: records whatever it is sent
: >"$WORK/sink.bin"
spawn 60 python3 -c '
import socket, sys
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", int(sys.argv[1]))); ls.listen(8); ls.settimeout(50)
with open(sys.argv[2], "ab") as out:
    while True:
        try:
            c, _ = ls.accept()
        except socket.timeout:
            break
        c.settimeout(5)
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                out.write(d); out.flush()
        except OSError:
            pass
        c.close()
' "$sink_port" "$WORK/sink.bin"
wait_until 5 listening "$sink_port" || die "the forwarded service did not start"
mark=$(log_mark)
spawn 90 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$victim" --direct-timeout 1 listen \
    --forward "127.0.0.1:$sink_port" "${allow[@]}" </dev/null >"$WORK/f.out" 2>"$WORK/f.err"
pid_f=$!
wait_registered "$victim" "$mark"
alive=1
for round in $(seq 1 $ROUNDS); do
    attack "$victim" "${strangers[round - 1]}"
    sleep 1
    if ! kill -0 "$pid_f" 2>/dev/null; then
        wait "$pid_f"
        fail "listen --forward died during attack $round: exit $?"
        alive=0
        break
    fi
    pass "listen --forward is still running after attack $round"
done
if [ $alive -eq 1 ]; then
    kill -TERM "$pid_f"
    wait "$pid_f"
    rc=$?
    if [ $rc -eq 134 ] || [ $rc -eq 139 ] || { [ $rc -ge 124 ] && [ $rc -ne 143 ]; }; then
        fail "listen --forward ended abnormally on SIGTERM: exit $rc"
    else
        pass "listen --forward ended on SIGTERM (exit $rc)"
    fi
fi
no_report "listen --forward: no memory error report" "$WORK/f.err"
if [ -s "$WORK/sink.bin" ]; then
    fail "the forwarded service received $(stat -c %s "$WORK/sink.bin") bytes of the stranger's garbage"
else
    pass "listen --forward: nothing of the garbage reached the forwarded service"
fi

finish
