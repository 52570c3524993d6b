#!/bin/bash
# A maker that leaves while its channel's number is being reserved (code-open, then the close
# at once, read before Redis answers the SET NX): the channel ends and its key is released, but
# the reservation's late OK put the number back into the instance's memory of its numbers,
# which nothing cleared. Each such maker leaked an entry (up to CL_CODE_MAX_NUMS, past which
# live channels are no longer remembered), and when Redis came back empty the instance set the
# keys of channels that did not exist: numbers held against every other instance for ttl+90 s.
# Expected: no code key in Redis after the makers left, none after Redis came back empty and
# the instance rejoined; a live channel's key is set again (the control). A real redis-server.
source "$(dirname "$0")/../integration/lib.sh" "$@"
command -v redis-server >/dev/null && command -v redis-cli >/dev/null || {
    echo "SKIPPED: redis-server or redis-cli is not installed" >&2
    exit 77
}
source "$TESTDIR/cluster_lib.sh"
ADV=$(cd "$(dirname "$0")" && pwd)
PFX=tcpunch:
rcli() { timeout 5 redis-cli -p "$REDIS_PORT" "$@"; }
code_keys() { rcli --scan --pattern "${PFX}code:*" | sort; }
no_code_keys() { [ -z "$(code_keys)" ]; }

start_redis
start_inst A --code-rate 0 --new-ids-per-hour 0
wait_until 5 inst_joined A || die "instance A did not join"

# the control: a live maker, whose key must come back after the restart
LIVE_OUT=$WORK/live.out
export ADV
spawn 60 python3 - "${INST_PORT[A]}" "$LIVE_OUT" <<'PY'
import os, sys, time
sys.path.insert(0, os.environ.get("ADV", "."))
from advpeer import Identity, ServerConn
import tpauth
port, out = int(sys.argv[1]), sys.argv[2]
c = ServerConn(("127.0.0.1", port))
ident = tpauth.id_maker(os.getpid())("live")
c.register(ident, Identity(ident))
c.msg({"type": "code-open"})
m = c.next_msg(5) or {}
with open(out, "w") as f:
    f.write(f"{m.get('channel', 0)}\n")
time.sleep(40)  # holds the channel while the test runs
PY
LIVE_PID=$!
has_live() { [ -s "$LIVE_OUT" ]; }
wait_until 10 has_live || die "the live maker got no code-opened"
LIVE=$(cat "$LIVE_OUT")
check "the live maker has a channel" [ "$LIVE" -gt 0 ]

timeout -k 2 60 python3 "$ADV/wh_reserve_gone.py" "${INST_PORT[A]}" 40 >"$WORK/gone.out" 2>&1
rc=$?
cat "$WORK/gone.out"
check "40 makers opened and left (exit $rc)" [ "$rc" = 0 ]
only_live() { [ "$(code_keys)" = "${PFX}code:$LIVE" ]; }
check "their keys are released: only the live channel's is left" wait_until 5 only_live

# Redis restarts empty: A sets the keys of its live channels again, and only theirs
stop_redis
start_redis "$REDIS_PORT"
has_live_key() { [ "$(rcli GET "${PFX}code:$LIVE")" = A ]; }
check "the live channel's key is set again after the restart" wait_until 15 has_live_key
sleep 1 # every SET of the rejoin has been answered
keys=$(code_keys | tr '\n' ' ')
check "no key of a maker that left came back (keys: $keys)" only_live
kill "$LIVE_PID" 2>/dev/null
wait "$LIVE_PID" 2>/dev/null
finish
