#!/bin/bash
# The server's wormhole mailbox (PROTOCOL.md section 20) against raw sockets (wh_raw.py): the
# exchange and its rules, expiry, the per-address limits and flood cut, --code-max, --no-code,
# and the codes' metrics and log lines.
source "$(dirname "$0")/lib.sh" "$@"

raw() { # MODE SERVER-FLAGS...
    local mode=$1
    shift
    start_server "$@"
    PYTHONPATH="$TESTDIR" timeout -k 2 90 python3 "$TESTDIR/wh_raw.py" "$mode" 127.0.0.1 \
        "$SERVER_PORT"
    check_rc "wh_raw.py $mode (server $*)" 0 $?
    check "the server survived wh_raw.py $mode" server_alive
}

stop_server() {
    kill "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
}

# metric 'NAME{LABELS}' from /metrics (empty when absent)
metric() {
    python3 -c 'import sys, urllib.request
text = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode()
print(next((l.split()[-1] for l in text.splitlines() if l.split(" ")[0] == sys.argv[2]), ""))' \
        "http://127.0.0.1:$MX_PORT/metrics" "$1"
}
at_least() { # NAME N: the metric is there and >= N
    local v
    v=$(metric "$1")
    [ -n "$v" ] && [ "$v" -ge "$2" ]
}
codes_closed() {
    [ "$(metric tcpunch_codes_open)" = 0 ]
}

MX_PORT=$(free_port) || die "no free port"
raw main --code-rate 0 --metrics-listen "127.0.0.1:$MX_PORT"
check "every channel is gone once its sides left (tcpunch_codes_open 0)" \
    wait_until 5 codes_closed
check "tcpunch_codes_opened_total counts the opens" at_least tcpunch_codes_opened_total 8
check "tcpunch_codes_claimed_total counts the claims" at_least tcpunch_codes_claimed_total 5
check "ended{how=confirmed}" at_least 'tcpunch_codes_ended_total{how="confirmed"}' 1
check "ended{how=wrong}" at_least 'tcpunch_codes_ended_total{how="wrong"}' 3
check "ended{how=gone}" at_least 'tcpunch_codes_ended_total{how="gone"}' 3
check "ended{how=unknown_claim}" at_least 'tcpunch_codes_ended_total{how="unknown_claim"}' 5
check "the log names a confirmed channel" grep -q -E "code [0-9]+: confirmed" "$SERVER_LOG"
check "the log names a claim with both ids" \
    grep -q -E "code [0-9]+: claimed by claimer-[0-9-]+ \(made by maker-" "$SERVER_LOG"
# the test's share, ADs and tags in base64, whole or at any of the 3 offsets
check "the log never holds a share, an AD or a tag" \
    bash -c "! grep -q -E 'AAECAwQFBgc|dGNwdW5jaC13b3Jt|QEFCQ0RFRkdI|gIGCg4SFhoeI' '$SERVER_LOG'"
stop_server
raw expiry --code-rate 0 --code-ttl 10
stop_server
raw flood --code-rate 20
stop_server
raw max --code-rate 0 --code-max 3
stop_server
raw nocode --no-code
stop_server
finish
