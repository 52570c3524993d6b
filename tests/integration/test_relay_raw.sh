#!/bin/bash
# The server's relay against raw sockets (relay_raw.py): joining rules and error codes,
# the splice, backpressure, the limits (cuts are resets) and a server without relay.
source "$(dirname "$0")/lib.sh" "$@"

raw() { # MODE SERVER-FLAGS...
    local mode=$1
    shift
    start_server "$@"
    timeout -k 2 90 python3 "$TESTDIR/relay_raw.py" "$mode" 127.0.0.1 "$SERVER_PORT" "$SERVER_PID"
    check_rc "relay_raw.py $mode (server $*)" 0 $?
    check "the server survived relay_raw.py $mode" server_alive
}

raw main --hello-timeout 1 --relay-wait 3 --relay-max 2
check "the server logged a relay-timeout" grep -q "relay-timeout" "$SERVER_LOG"
check "the server logged a spliced session's clean end" grep -q "both sides closed" "$SERVER_LOG"
raw limits --relay-bytes 100K --relay-seconds 2
check "the server logged the byte-limit cut" grep -q -E "ended \(reset\).*byte limit" "$SERVER_LOG"
check "the server logged the time-limit cut" grep -q -E "ended \(reset\).*time limit" "$SERVER_LOG"
raw rate --relay-rate 200K
raw disabled --no-relay

# SIGTERM with a session waiting at the relay: server-shutdown to it, then a clean exit
start_server --relay-wait 30
PYTHONPATH="$TESTDIR" timeout -k 2 30 python3 - 127.0.0.1 "$SERVER_PORT" <<'EOF' &
import json, socket, sys, time
import tpauth
host, port = sys.argv[1], int(sys.argv[2])
NONCE = {}
def conn():
    s = socket.create_connection((host, port), timeout=5)
    f = s.makefile("rb")
    NONCE[s] = json.loads(f.readline())["nonce"]  # the server's challenge comes first
    return s, f
def send(s, o):
    s.sendall((json.dumps(o) + "\n").encode())
def hello(s, ident):
    send(s, tpauth.hello_msg(tpauth.Identity(ident), NONCE[s], ident))
(a, fa), (b, fb) = conn(), conn()
hello(a, "sd-a"); fa.readline()
hello(b, "sd-b"); fb.readline()
send(a, {"type": "connect", "target": "sd-b"})
p = json.loads(fa.readline())
r, fr = conn()
send(r, {"type": "relay", "version": 1, "session": p["session"], "token": p["token"]})
print("waiting", flush=True)
line = fr.readline()
sys.exit(0 if b'"server-shutdown"' in line else 1)
EOF
client=$!
BG_PIDS+=($client)
wait_until 5 grep -q "waiting for sd-b" "$SERVER_LOG" || fail "the relay side never waited"
kill -TERM "$SERVER_PID"
wait "$client"
check_rc "a waiting relay side gets server-shutdown on SIGTERM" 0 $?
wait_until 10 bash -c "! kill -0 $SERVER_PID 2>/dev/null"
wait "$SERVER_PID"
check_rc "the server exits cleanly with a relay session waiting" 0 $?
finish
