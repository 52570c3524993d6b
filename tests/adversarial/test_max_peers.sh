#!/usr/bin/env bash
# --max-peers N: N connections at once are accepted (registered or not yet), the one beyond
# gets exactly the `server-full` error line and the end of the stream, never a challenge after
# it (PROTOCOL.md, "Errors"); the peers already registered keep working (one reaches another);
# once one connection closes, a new one is accepted again. max_peers.py drives raw sockets.
source "$(dirname "$0")/../integration/lib.sh" "$@"

command -v python3 >/dev/null || { echo "SKIPPED: python3 is not installed" >&2; exit 77; }

N=3
start_server --max-peers "$N"
spawn 60 python3 "$(dirname "$0")/max_peers.py" "$SERVER_PORT" "$N" >"$WORK/result" \
    2>"$WORK/py.err"
wait $!
rc=$?
cat "$WORK/result"
check_rc "max_peers.py against --max-peers $N ($(grep -c '^ok' "$WORK/result") checks passed)" \
    0 "$rc"
[ -s "$WORK/py.err" ] && cat "$WORK/py.err" >&2
check "the server logged the refusals" grep -q "server-full" "$SERVER_LOG"
check "no challenge was tried on a refused connection" \
    [ "$(grep -c "cannot send the challenge" "$SERVER_LOG")" -eq 0 ]
check "the server is still running" server_alive
finish
