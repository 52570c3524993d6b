#!/usr/bin/env bash
# `listen --forward` must not serve anyone who knows the id unless told to. Before, without
# --allow it forwarded every peer that connected: a stranger reached the service. Now starting
# it without --allow ID[=KEY] or --allow-anyone is a usage error (exit 1) that says so; with
# --allow-anyone the stranger is served (the explicit choice), with --allow only the listed peer.
source "$(dirname "$0")/../integration/lib.sh" "$@"
command -v python3 >/dev/null || { echo "SKIPPED: python3 is needed" >&2; exit 77; }
start_server
SRV=127.0.0.1:$SERVER_PORT
start_echo 100

# ---- no --allow, no --allow-anyone: a usage error, at once ----
V=$(uid fwd)
spawn 30 "$TCPUNCH" -s "$SRV" -i "$V" listen --forward "127.0.0.1:$ECHO_PORT" </dev/null \
    >"$WORK/v.out" 2>"$WORK/v.err"
pid_v=$!
# a forwarder that runs would register within a second or two: give it the chance
wait_until 3 grep -q -F -- "register $V " "$SERVER_LOG"
echo "stranger was here" | timeout -k 2 20 "$TCPUNCH" -s "$SRV" -i "$(uid stranger)" -t 2 \
    connect "$V" >"$WORK/s.out" 2>"$WORK/s.err"
RC_S=$?
check "a stranger did not reach the service (its echo came back: $(head -c 40 "$WORK/s.out"))" \
    test ! -s "$WORK/s.out"
check "the service saw no connection" test "$(echo_conns)" -eq 0
check "the forwarder never registered" sh -c "! grep -q -F -- 'register $V ' '$SERVER_LOG'"
kill "$pid_v" 2>/dev/null
wait "$pid_v"
check_rc "--forward without --allow or --allow-anyone" 1 $?
check "the usage error names both choices" \
    sh -c "grep -q -- '--allow ID' '$WORK/v.err' && grep -q -- '--allow-anyone' '$WORK/v.err'"
check_rc "the stranger's connect (no such peer)" 3 "$RC_S"

# ---- --allow-anyone: the explicit choice serves the stranger ----
V2=$(uid anyone)
mark=$(log_mark)
spawn 60 "$TCPUNCH" -s "$SRV" -i "$V2" listen --forward "127.0.0.1:$ECHO_PORT" --allow-anyone \
    </dev/null >/dev/null 2>"$WORK/v2.err"
pid_v2=$!
wait_registered "$V2" "$mark"
echo "anyone may" | timeout -k 2 20 "$TCPUNCH" -s "$SRV" -i "$(uid stranger)" -t 5 \
    connect "$V2" >"$WORK/s2.out" 2>"$WORK/s2.err"
check_rc "--allow-anyone: a stranger connects" 0 $?
check "--allow-anyone: its data came back from the service" grep -q -x "anyone may" "$WORK/s2.out"
kill "$pid_v2" 2>/dev/null
wait "$pid_v2" 2>/dev/null

# ---- --allow ID: only that peer ----
V3=$(uid allow)
A=$(uid alice)
mark=$(log_mark)
spawn 60 "$TCPUNCH" -s "$SRV" -i "$V3" listen --forward "127.0.0.1:$ECHO_PORT" --allow "$A" \
    </dev/null >/dev/null 2>"$WORK/v3.err"
pid_v3=$!
wait_registered "$V3" "$mark"
before=$(echo_conns)
echo "not me" | timeout -k 2 20 "$TCPUNCH" -s "$SRV" -i "$(uid stranger)" -t 2 --no-relay \
    connect "$V3" >"$WORK/s3.out" 2>"$WORK/s3.err"
check_rc "--allow: a stranger gets no connection" 4 $?
check "--allow: the service saw nothing of it" test "$(echo_conns)" -eq "$before"
echo "alice here" | timeout -k 2 20 "$TCPUNCH" -s "$SRV" -i "$A" -t 5 connect "$V3" \
    >"$WORK/a.out" 2>"$WORK/a.err"
check_rc "--allow: alice connects" 0 $?
check "--allow: alice's data came back" grep -q -x "alice here" "$WORK/a.out"
kill "$pid_v3" 2>/dev/null
wait "$pid_v3" 2>/dev/null
finish
