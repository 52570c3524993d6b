#!/usr/bin/env bash
# Forwarding: listen --forward serves many peers at once, each over its own TCP connection to
# a local service (fwdtool.py echo); connect --local punches a new connection per local client;
# plain `connect` (the ssh ProxyCommand form) runs several at once under one id (auxiliary
# registrations); --allow refuses strangers and wrong keys without touching the service; the
# forwarder outlives a server restart. Every process is bounded by timeout.
source "$(dirname "$0")/lib.sh"

TOOL=$TESTDIR/fwdtool.py
command -v python3 >/dev/null || die "python3 is needed"
start_server
SRV=127.0.0.1:$SERVER_PORT

# the service behind the forwarder: an echo server counting its connections
start_echo 170

BOB=$(uid bob)
ALICE=$(uid alice)
mark=$(log_mark)
spawn 170 "$TCPUNCH" -s "$SRV" -i "$BOB" -v listen --forward "127.0.0.1:$ECHO_PORT" --allow-anyone \
    </dev/null >"$WORK/fwd.out" 2>"$WORK/fwd.err"
FWD_PID=$!
wait_registered "$BOB" "$mark"

# ---- connect --local: 5 concurrent clients, 1 MiB each way, through 5 punched sessions ----
LOCAL_PORT=$(free_port)
spawn 120 "$TCPUNCH" -s "$SRV" -i "$ALICE" -v connect "$BOB" --local "$LOCAL_PORT" \
    </dev/null >"$WORK/local.out" 2>"$WORK/local.err"
LOCAL_PID=$!
wait_until 5 listening "$LOCAL_PORT" || die "connect --local does not listen on $LOCAL_PORT"
check "--forward/--local: 5 concurrent connections, 1 MiB each way, intact" \
    timeout 90 python3 "$TOOL" clients "$LOCAL_PORT" 5 1048576
check "the forwarder opened 5 connections to the service" test "$(echo_conns)" -eq 5
check "5 auxiliary registrations of $ALICE" \
    test "$(grep -c "register $ALICE (auxiliary)" "$SERVER_LOG")" -ge 5
check "--local: nothing on stdout" test ! -s "$WORK/local.out"
check "--forward: nothing on stdout" test ! -s "$WORK/fwd.out"
# a second round on the same forwarder and listener: nothing was used up
check "--local: a second round of 5" timeout 90 python3 "$TOOL" clients "$LOCAL_PORT" 5 65536
check "the forwarder is still registered" kill -0 "$FWD_PID"

# ---- stdin/stdout connect (ProxyCommand form): two at once under one id ----
head -c 300000 /dev/urandom >"$WORK/p1.in"
head -c 200000 /dev/urandom >"$WORK/p2.in"
spawn 60 "$TCPUNCH" -s "$SRV" -i "$ALICE" connect "$BOB" <"$WORK/p1.in" >"$WORK/p1.out" \
    2>"$WORK/p1.err"
P1=$!
timeout -k 2 60 "$TCPUNCH" -s "$SRV" -i "$ALICE" connect "$BOB" <"$WORK/p2.in" >"$WORK/p2.out" \
    2>"$WORK/p2.err"
check_rc "connect (stdin/stdout) while another runs under the same id" 0 $?
wait "$P1"
check_rc "the other connect" 0 $?
same_file "stdin/stdout through --forward (1)" "$WORK/p1.in" "$WORK/p1.out"
same_file "stdin/stdout through --forward (2)" "$WORK/p2.in" "$WORK/p2.out"

# forwarder ID TAG ARGS...: another listen --forward to the echo server, registered; sets
# FWD2_PID and remembers the service's connection count in `before`
forwarder() {
    local id=$1 tag=$2 mark
    shift 2
    mark=$(log_mark)
    before=$(echo_conns)
    spawn 120 "$TCPUNCH" -s "$SRV" -i "$id" listen --forward "127.0.0.1:$ECHO_PORT" "$@" \
        </dev/null >"$WORK/$tag.out" 2>"$WORK/$tag.err"
    FWD2_PID=$!
    wait_registered "$id" "$mark"
}

# ---- --allow ----
GUARD=$(uid guard)
forwarder "$GUARD" guard --allow "$ALICE"
GUARD_PID=$FWD2_PID
STRANGER=$(uid stranger)
echo hi | timeout -k 2 30 "$TCPUNCH" -s "$SRV" -i "$STRANGER" -t 1.5 --no-relay connect "$GUARD" \
    >"$WORK/s.out" 2>"$WORK/s.err"
check_rc "--allow: a peer not listed gets no connection" 4 $?
check "--allow: the refusal is logged" grep -q "refusing a session with $STRANGER: not allowed" \
    "$WORK/guard.err"
check "--allow: the service saw nothing" test "$(echo_conns)" -eq "$before"
echo hi | timeout -k 2 30 "$TCPUNCH" -s "$SRV" -i "$ALICE" connect "$GUARD" >"$WORK/al.out" \
    2>"$WORK/al.err"
check_rc "--allow: the listed peer connects" 0 $?
check "--allow: and its data comes back" grep -qx hi "$WORK/al.out"
kill "$GUARD_PID" 2>/dev/null
wait "$GUARD_PID" 2>/dev/null

# a pinned key that is not the peer's: the handshake refuses it, the service sees nothing
OTHER_KEY=$(TCPUNCH_HOME=$WORK/home/other "$TCPUNCH_BIN" id --json | python3 -c \
    'import json,sys; print(json.load(sys.stdin)["key"])')
[ -n "$OTHER_KEY" ] || die "cannot make a second identity"
PIN=$(uid pin)
forwarder "$PIN" pin --allow "$ALICE=$OTHER_KEY"
PIN_PID=$FWD2_PID
echo hi | timeout -k 2 30 "$TCPUNCH" -s "$SRV" -i "$ALICE" -t 2 --no-relay connect "$PIN" \
    >"$WORK/pa.out" 2>"$WORK/pa.err"
check_rc "--allow ID=KEY: the right id with another key gets no connection" 4 $?
check "--allow ID=KEY: the forwarder says the key was refused" grep -q "KEY" "$WORK/pin.err"
check "--allow ID=KEY: the service saw nothing" test "$(echo_conns)" -eq "$before"
check "--allow ID=KEY: the forwarder keeps serving" kill -0 "$PIN_PID"
kill "$PIN_PID" 2>/dev/null
wait "$PIN_PID" 2>/dev/null

# ---- usage errors ----
"$TCPUNCH" -s "$SRV" listen --forward nonsense --allow-anyone </dev/null >/dev/null 2>"$WORK/u1.err"
check_rc "--forward without a port" 1 $?
"$TCPUNCH" -s "$SRV" listen --forward "127.0.0.1:$ECHO_PORT" </dev/null >/dev/null 2>"$WORK/u0.err"
check_rc "--forward without --allow or --allow-anyone" 1 $?
check "--forward without --allow: says what to give" grep -q -- "--allow-anyone" "$WORK/u0.err"
"$TCPUNCH" -s "$SRV" listen --forward "127.0.0.1:$ECHO_PORT" --allow "$ALICE" --allow-anyone \
    </dev/null >/dev/null 2>"$WORK/u6.err"
check_rc "--allow with --allow-anyone" 1 $?
"$TCPUNCH" -s "$SRV" listen --allow-anyone </dev/null >/dev/null 2>"$WORK/u7.err"
check_rc "--allow-anyone without --forward" 1 $?
"$TCPUNCH" -s "$SRV" chat --forward 127.0.0.1:1 </dev/null >/dev/null 2>"$WORK/u2.err"
check_rc "--forward on another command" 1 $?
"$TCPUNCH" -s "$SRV" listen --allow "$ALICE" </dev/null >/dev/null 2>"$WORK/u3.err"
check_rc "--allow without --forward" 1 $?
"$TCPUNCH" -s "$SRV" listen --forward 127.0.0.1:1 --allow 'bad id' </dev/null >/dev/null \
    2>"$WORK/u4.err"
check_rc "--allow with a bad id" 1 $?
"$TCPUNCH" -s "$SRV" connect "$BOB" --local "$LOCAL_PORT" </dev/null >/dev/null 2>"$WORK/u5.err"
check_rc "--local on a port in use" 6 $?

# ---- the forwarder outlives a server restart ----
kill -TERM "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null
sleep 1
check "--forward outlives its server" kill -0 "$FWD_PID"
mark=$(log_mark)
timeout -k 2 120 "$RENDEZVOUS" -v -l "$SRV" --max-per-ip 0 --rate-per-ip 0 --connect-rate 0 \
    >>"$WORK/server.out" 2>>"$SERVER_LOG" &
SERVER_PID=$!
BG_PIDS+=($SERVER_PID)
wait_until 5 listening "$SERVER_PORT" || die "the server did not come back on $SRV"
wait_until 15 registered_since "$BOB" "$mark" || die "the forwarder did not register again"
pass "--forward registered again after the restart"
check "--local after the restart: 5 concurrent connections, 1 MiB each way" \
    timeout 90 python3 "$TOOL" clients "$LOCAL_PORT" 5 1048576

finish
