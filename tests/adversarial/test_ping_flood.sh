#!/usr/bin/env bash
# The ping flood (red-team item 4): auxiliary connections that send pings as fast as they can
# and never read. The server used to queue every pong as its own allocation, uncounted by its
# write-queue bound, and to read without limit (~5 MB per connection). Now a connection gets at
# most 10 pings per second (burst 10) and is closed with `too-many-pings` beyond; a connection
# whose answers wait unread stops being read (PROTOCOL.md 9, 10). The server's RSS stays within
# a few MB, and a real pair connects while the flood runs.
source "$(dirname "$0")/../integration/lib.sh"

command -v python3 >/dev/null || { echo "SKIPPED: python3 is not installed" >&2; exit 77; }
[ -r /proc/self/status ] || { echo "SKIPPED: no /proc" >&2; exit 77; }

K=8
start_server
SRV=$(pgrep -P "$SERVER_PID" | head -n 1) # SERVER_PID is the `timeout` wrapper's
[ -n "$SRV" ] || die "cannot find the server process under $SERVER_PID"
spawn 90 python3 "$(dirname "$0")/ping_flood.py" "$SERVER_PORT" "$SRV" "$K" 100000 "$WORK" \
    >"$WORK/result" 2>"$WORK/flood.err"
FLOOD=$!
wait_until 10 test -e "$WORK/started" || die "the flooder did not register (see flood.err)"

# a real pair during the flood
echo "hello through the flood" >"$WORK/a.in"
: >"$WORK/b.in"
run_pair "$(uid fb)" "$(uid fa)" "$WORK/a.in" "$WORK/b.in"
check_rc "connect during the flood" 0 "$RC_A"
check_rc "listen during the flood" 0 "$RC_B"
same_file "the pair's data arrived" "$WORK/a.in" "$WORK/b.out"

wait_until 60 grep -q rss_peak "$WORK/result" || die "the flood did not end (see flood.err)"
touch "$WORK/done"
wait "$FLOOD"
cat "$WORK/result" >&2
res() { awk -v w="$1" '$1 == w { print $2 }' "$WORK/result"; }
growth=$(($(res rss_peak) - $(res rss_before)))
check "server RSS grew by ${growth} KiB for $K flooding connections (at most 4096)" \
    [ "$growth" -le 4096 ]
codes=$(awk '$1 == "code" { print $2 }' "$WORK/result" | sort | uniq -c | tr -s ' \n' '  ')
check "every flooder was dropped with too-many-pings (got: $codes)" \
    [ "$(awk '$1 == "code" && $2 == "too-many-pings"' "$WORK/result" | wc -l)" -eq "$K" ]
check "the server logged the refusals" grep -q "too-many-pings" "$SERVER_LOG"
check "the server is still running" server_alive
finish
