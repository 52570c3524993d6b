#!/usr/bin/env bash
# A lying server reached on loopback (through `ssh -L`, say) must not aim a birthday punch at
# 127.0.0.1: the hard side's k connections (or the easy side's m guesses over a port range)
# would be a scan of our own services, each completed one sent our shake. A loopback target is
# refused unless the test-only switch TCPUNCH_TEST_BIRTHDAY_LOOPBACK=1 is set (tcpunch(1),
# ENVIRONMENT). It used to be taken whenever the server was on loopback.
# Here: a hard plan, k 8, at a local listener, from a fake server on 127.0.0.1: refused without
# the switch (no burst: the listener sees at most the ordinary punch's dials), taken with it.
# Runs in a network namespace of its own (unshare -n, root): SKIPPED without.
source "$(dirname "$0")/ownns.sh" "$@"
source "$(dirname "$0")/../integration/lib.sh" "$@"
unset TCPUNCH_TEST_BIRTHDAY_LOOPBACK
ADV=$(cd "$(dirname "$0")" && pwd)
command -v python3 >/dev/null || { echo "SKIPPED: python3 is needed" >&2; exit 77; }

KEY=$(python3 -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())')
VPORT=$(free_port)
python3 - "$WORK/hard.json" "$VPORT" "$KEY" <<'PY'
import json, sys
f, vport, key = sys.argv[1:4]
json.dump({"observed": "127.0.0.1:" + vport, "endpoints": [], "key": key,
           "birthday": {"role": "hard", "target": "127.0.0.1:" + vport, "k": 8, "m": 64,
                        "ttl": 16, "pace_ms": 100, "ports": [1024, 65535], "easy_delay_us": 0}},
          open(f, "w"))
PY
OFF=$(uid bd-lo-off)
ON=$(uid bd-lo-on)
FPORT=$(free_port)
PPORT=$(free_port)
spawn 30 python3 "$ADV/fakesrv.py" "$FPORT" "$WORK/fake.log" --features birthday \
    --probe-port "$PPORT" --punch-delay 1.0 --lifetime 20 \
    --mapping "$OFF=dependent" --mapping "$ON=dependent" \
    --punch "$OFF=$WORK/hard.json" --punch "$ON=$WORK/hard.json"
wait_until 5 listening "$FPORT" || die "fakesrv.py does not listen"
wait_until 5 listening "$PPORT" || die "no probe port"

spawn 20 "$TCPUNCH" -s "127.0.0.1:$FPORT" -i "$OFF" -t 3 -v listen </dev/null \
    >"$WORK/off.out" 2>"$WORK/off.err"
P1=$!
spawn 20 env TCPUNCH_TEST_BIRTHDAY_LOOPBACK=1 "$TCPUNCH" -s "127.0.0.1:$FPORT" -i "$ON" -t 3 \
    -v listen </dev/null >"$WORK/on.out" 2>"$WORK/on.err"
P2=$!
ordered() { [ "$(grep -c "punch .* responder" "$WORK/fake.log" 2>/dev/null)" -ge 2 ]; }
wait_until 10 ordered || die "the punch orders were not sent"
decided() { grep -qs "punching to mallory" "$WORK/off.err" && grep -qs "punching to mallory" "$WORK/on.err"; }
wait_until 10 decided || die "the peers did not punch"
kill "$P1" "$P2" 2>/dev/null
wait "$P1" "$P2" 2>/dev/null
check "without the switch, the loopback target is refused" \
    grep -q "refusing the birthday punch with mallory: its target 127.0.0.1:$VPORT is a loopback address" "$WORK/off.err"
check "without the switch, no birthday starts" \
    test "$(grep -c "we are the hard side" "$WORK/off.err")" -eq 0
check "with TCPUNCH_TEST_BIRTHDAY_LOOPBACK=1, the same plan is taken" \
    grep -q "we are the hard side, 8 sockets towards 127.0.0.1:$VPORT" "$WORK/on.err"
finish
