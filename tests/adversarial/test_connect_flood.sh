#!/usr/bin/env bash
# The refusal log flood (final red team, server item 3): a registered peer floods `connect`
# requests. Those beyond --connect-rate are refused without closing the connection, and each
# refusal was one log line (~50,000 lines a second from one connection). Now each connection
# logs at most SRV_REFUSE_LOG_BURST (5) non-fatal refusals per 10 s and then one count, and a
# peer with more than 10 x --connect-rate refused requests in a second is dropped (fatal
# rate-limited). The log grows by a handful of lines, and the server keeps serving.
source "$(dirname "$0")/../integration/lib.sh"

command -v python3 >/dev/null || { echo "SKIPPED: python3 is not installed" >&2; exit 77; }

start_server --connect-rate 5
notes() { grep -vc "debug:" "$SERVER_LOG"; } # what a server logs without -v
before=$(notes)
before_all=$(wc -l <"$SERVER_LOG")
spawn 30 python3 "$(dirname "$0")/connect_flood.py" "$SERVER_PORT" 200000 "$WORK" \
    >"$WORK/result" 2>"$WORK/flood.err"
FLOOD=$!
wait "$FLOOD" || die "the flooder failed (see flood.err): $(cat "$WORK/flood.err")"
cat "$WORK/result" >&2
after=$(notes)
after_all=$(wc -l <"$SERVER_LOG")
refused=$(grep -c "refused .*rate-limited" "$SERVER_LOG")
check "the flood made $((after - before)) log lines without -v (at most 20)" \
    [ $((after - before)) -le 20 ]
# -v logs each request (debug); the drop after 10 x --connect-rate bounds those too
check "and $((after_all - before_all)) with -v (at most 120)" [ $((after_all - before_all)) -le 120 ]
check "$refused refusal lines logged (at most 10)" [ "$refused" -le 10 ]
check "the flooder was dropped (got: $(tr '\n' ' ' <"$WORK/result"))" \
    grep -qx "closed yes" "$WORK/result"
check "with rate-limited" grep -qx "code rate-limited" "$WORK/result"
check "the drop was logged" grep -q "rate-limited: more than .* (closing)" "$SERVER_LOG"

# the server still introduces a real pair
echo "after the flood" >"$WORK/a.in"
: >"$WORK/b.in"
run_pair "$(uid cb)" "$(uid ca)" "$WORK/a.in" "$WORK/b.in"
check_rc "connect after the flood" 0 "$RC_A"
same_file "the pair's data arrived" "$WORK/a.in" "$WORK/b.out"
check "the server is still running" server_alive
finish
