#!/usr/bin/env bash
# A lying server must not restart the birthday burst (PROTOCOL.md 17, "What a peer refuses").
# It used to: a third punch order for one id in listen mode evicts the oldest session of that
# id (sess_wait_room), which ends its birthday, so the next plan found none running and started
# a new burst of k SYNs at once; 21 orders 30 ms apart gave 11 bursts (with k 256: ~2800 SYNs
# per 0.6 s, for as long as the server goes on) at whatever global endpoint it names. Now a peer
# starts no birthday within PROTO_BDAY_GAP_MS (10 s) of its last start, however that one ended
# (peer/bdplan.c, the server's own rule of one plan per pair per 10 s), and at most 60 an hour.
# Here: 21 orders of a hard plan, k 8, 30 ms apart, to one waiting peer: one burst, the others
# refused for the gap.
# Runs in a network namespace of its own (unshare -n, root): SKIPPED without.
source "$(dirname "$0")/ownns.sh" "$@"
source "$(dirname "$0")/../integration/lib.sh" "$@"
# birthday targets on loopback are refused unless this test-only switch is set (tcpunch(1))
export TCPUNCH_TEST_BIRTHDAY_LOOPBACK=1
ADV=$(cd "$(dirname "$0")" && pwd)
command -v python3 >/dev/null || { echo "SKIPPED: python3 is needed" >&2; exit 77; }

KEY=$(python3 -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())')
VPORT=$(free_port)
# the "victim": counts connections (each is one SYN that got through; the rest are the same)
spawn 30 python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(512); s.settimeout(0.2)
end = time.time() + 20
while time.time() < end:
    try:
        c, a = s.accept()
    except socket.timeout:
        continue
    open(sys.argv[2], "a").write("%s:%d\n" % a); c.close()
' "$VPORT" "$WORK/victim.count"
: >"$WORK/victim.count"
wait_until 5 listening "$VPORT" || die "no victim listener"

python3 - "$WORK/hard.json" "$VPORT" "$KEY" <<'PY'
import json, sys
f, vport, key = sys.argv[1:4]
json.dump({"observed": "127.0.0.1:" + vport, "endpoints": [], "key": key,
           "birthday": {"role": "hard", "target": "127.0.0.1:" + vport, "k": 8, "m": 64,
                        "ttl": 16, "pace_ms": 100, "ports": [1024, 65535], "easy_delay_us": 0}},
          open(f, "w"))
PY
ID=$(uid bd-evict)
FPORT=$(free_port)
PPORT=$(free_port)
punches=()
for i in $(seq 21); do punches+=(--punch "$ID=$WORK/hard.json"); done
spawn 30 python3 "$ADV/fakesrv.py" "$FPORT" "$WORK/fake.log" --features birthday \
    --probe-port "$PPORT" --punch-delay 1.0 --punch-gap 0.03 --lifetime 20 \
    --mapping "$ID=dependent" "${punches[@]}"
wait_until 5 listening "$FPORT" || die "fakesrv.py does not listen"
wait_until 5 listening "$PPORT" || die "no probe port"

spawn 20 "$TCPUNCH" -s "127.0.0.1:$FPORT" -i "$ID" -t 3 -v listen </dev/null \
    >"$WORK/peer.out" 2>"$WORK/peer.err"
PEER=$!
all_sent() { [ "$(cat "$WORK/fake.log" 2>/dev/null | grep -c "punch $ID responder")" -ge 21 ]; }
wait_until 10 all_sent || die "the 21 punch orders were not sent"
sleep 3
kill "$PEER" 2>/dev/null; wait "$PEER" 2>/dev/null

starts=$(grep -c "we are the hard side" "$WORK/peer.err")
evicted=$(grep -c "dropping a session in setup with mallory" "$WORK/peer.err")
conns=$(wc -l <"$WORK/victim.count")
echo "birthday starts: $starts, sessions evicted: $evicted, connections at the target: $conns" >&2
gap=$(grep -c "refusing the birthday punch with mallory: our last birthday punch started .* ms ago (one per 10 s at most)" "$WORK/peer.err")
check "21 punch orders within 0.6 s start one birthday burst (started: $starts)" \
    test "$starts" -eq 1
check "sessions were evicted (the server's lever; evicted: $evicted)" test "$evicted" -ge 1
check "the plans after an eviction are refused for the 10 s gap (refused so: $gap)" \
    test "$gap" -ge 1
finish
