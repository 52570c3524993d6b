#!/usr/bin/env bash
# Anything that completes one guess must not end the easy side's guessing. It used to
# (peer/bday.c stopped at the first TCP completion, before any handshake): an open port on the
# hard NAT's public address (a router's VPN/admin/bandwidth-test port: 1723, 2000, 1194 ...;
# the low range 1024-2047 is guessed first, and M = 1024 covers all of it), or one forged
# SYN,ACK on the path, ended the attempt, and the guesses that would have met the real mapping
# were never sent. Now the guessing goes on until a handshake wins (the punch then stops the
# engine), and the early relay decides by the birthday connections still handshaking.
# Here: the range 2000-2100, a silent decoy on 2000 (always among the first 48 guesses: the part
# 2000-2047 goes first) and the "mapping" on 2100 (in the second part); m = 101 covers every
# port: the guess at 2100 goes out.
# Runs in a network namespace of its own (unshare -n, root): SKIPPED without.
source "$(dirname "$0")/ownns.sh" "$@"
source "$(dirname "$0")/../integration/lib.sh" "$@"
# birthday targets on loopback are refused unless this test-only switch is set (tcpunch(1))
export TCPUNCH_TEST_BIRTHDAY_LOOPBACK=1
ADV=$(cd "$(dirname "$0")" && pwd)
command -v python3 >/dev/null || { echo "SKIPPED: python3 is needed" >&2; exit 77; }

# listener PORT TAG: counts connections in $WORK/TAG.count, holds each open and silent
listener() {
    spawn 25 python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(64); s.settimeout(0.2)
held = []
end = time.time() + 15
while time.time() < end:
    try:
        c, a = s.accept()
    except socket.timeout:
        continue
    open(sys.argv[2], "a").write("%s:%d\n" % a); held.append(c)
' "$1" "$WORK/$2.count"
    : >"$WORK/$2.count"
    wait_until 5 listening "$1" || die "no listener on $1"
}
listener 2000 decoy
listener 2100 mapping

KEY=$(python3 -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())')
python3 - "$WORK/easy.json" "$KEY" <<'PY'
import json, sys
f, key = sys.argv[1:3]
json.dump({"observed": "127.0.0.1:2100", "endpoints": [], "key": key,
           "birthday": {"role": "easy", "target": "127.0.0.1:1", "k": 256, "m": 101,
                        "ttl": 0, "pace_ms": 200, "ports": [2000, 2100], "easy_delay_us": 0}},
          open(f, "w"))
PY
ID=$(uid bd-decoy)
FPORT=$(free_port)
PPORT=$(free_port)
LPORT=$(free_port)
spawn 25 python3 "$ADV/fakesrv.py" "$FPORT" "$WORK/fake.log" --features birthday \
    --probe-port "$PPORT" --punch-delay 1.0 --lifetime 15 \
    --mapping "$ID=independent" --punch "$ID=$WORK/easy.json"
wait_until 5 listening "$FPORT" || die "fakesrv.py does not listen"
wait_until 5 listening "$PPORT" || die "no probe port"
spawn 15 "$TCPUNCH" -s "127.0.0.1:$FPORT" -i "$ID" -p "$LPORT" -t 4 -v listen </dev/null \
    >"$WORK/peer.out" 2>"$WORK/peer.err"
PEER=$!
took() { grep -qs "we are the easy side" "$WORK/peer.err"; }
wait_until 10 took || die "the easy plan was not taken"
sleep 2
kill "$PEER" 2>/dev/null; wait "$PEER" 2>/dev/null
echo "decoy connections: $(wc -l <"$WORK/decoy.count"), mapping connections: $(wc -l <"$WORK/mapping.count")" >&2
check "the decoy on 2000 was guessed" test "$(wc -l <"$WORK/decoy.count")" -eq 1
check "the guess at the mapping (2100) still went out after the decoy answered" \
    test "$(wc -l <"$WORK/mapping.count")" -eq 1
finish
