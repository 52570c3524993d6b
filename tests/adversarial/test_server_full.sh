#!/usr/bin/env bash
# server-full (final red team, server item 5): beyond --max-peers a connection gets exactly the
# `server-full` error line, no challenge, and the usual linger (its input read and dropped
# until it closes), not an early close: the server used to try the challenge on the shut-down
# stream, fail with EPIPE and close at once, so input that had arrived turned into a reset that
# could cut the error line.
source "$(dirname "$0")/../integration/lib.sh"

command -v python3 >/dev/null || { echo "SKIPPED: python3 is not installed" >&2; exit 77; }

start_server --max-peers 1
spawn 60 python3 "$(dirname "$0")/server_full.py" "$SERVER_PORT" 5 >"$WORK/result" \
    2>"$WORK/py.err"
wait $! || die "the client failed: $(cat "$WORK/py.err")"
cat "$WORK/result" >&2
check "5 connections beyond --max-peers answered" [ "$(grep -c '^got' "$WORK/result")" -eq 5 ]
check "each got exactly the server-full line, no challenge, no reset" \
    [ "$(grep -cx 'got error/server-full reset no' "$WORK/result")" -eq 5 ]
check "no challenge was tried on a refused connection" \
    [ "$(grep -c "cannot send the challenge" "$SERVER_LOG")" -eq 0 ]
check "the server is still running" server_alive
finish
