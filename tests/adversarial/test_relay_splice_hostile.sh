#!/bin/bash
# A hostile relay client against the splice path (relay_splice.py hostile): sessions at
# --relay-max hold a bounded number of descriptors (their pipes) and give every one back after
# resets mid-stream; stalled receivers with senders dribbling single bytes (many short pipe
# buffers) cost the server no CPU spin; a fresh session still splices afterwards.
source "$(dirname "$0")/../integration/lib.sh" "$@"
command -v python3 >/dev/null || { echo "SKIPPED: python3 is needed" >&2; exit 77; }
start_server --relay-max 5 --relay-per-peer 0 --relay-per-ip 0 --new-ids-per-hour 0
mark=$(log_mark)
timeout -k 2 90 python3 "$TESTDIR/relay_splice.py" hostile 127.0.0.1 "$SERVER_PORT" "$SERVER_PID"
check_rc "relay_splice.py hostile" 0 $?
check "the server survived" server_alive
if [ "${TCPUNCH_TEST_RELAY_COPY:-0}" = 1 ]; then
    check "the sessions were copied (--relay-copy)" grep -q "copying through user space" <(log_since "$mark")
else
    check "the sessions were spliced" grep -q "splicing in the kernel" <(log_since "$mark")
fi
finish
