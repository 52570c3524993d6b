#!/usr/bin/env bash
# A relayed peer against the relay's splice(2) path (relay_splice_red.py): socket tricks a
# plain read absorbs and splice may not. urgent: TCP urgent data (MSG_OOB) mid-stream, where
# splice stops; before the fix the session stalled and the server spun on the readable socket.
# Run on both paths (adversarial.relay_splice_red.copy: --relay-copy through lib.sh).
source "$(dirname "$0")/../integration/lib.sh"

command -v python3 >/dev/null || { echo "SKIPPED: python3 is not installed" >&2; exit 77; }
[ -r /proc/self/stat ] || { echo "SKIPPED: no /proc" >&2; exit 77; }

hostile() { # MODE SERVER-FLAGS...
    local mode=$1
    shift
    start_server "$@"
    timeout -k 2 60 python3 "$(dirname "$0")/relay_splice_red.py" "$mode" 127.0.0.1 \
        "$SERVER_PORT" "$SERVER_PID"
    check_rc "relay_splice_red.py $mode (server $*)" 0 $?
    check "the server survived relay_splice_red.py $mode" server_alive
    kill "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null
}

hostile urgent
finish
