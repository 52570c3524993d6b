#!/usr/bin/env bash
# The relay dribble (red-team item 1): a side that never reads and 1-byte segments into the
# other side. Each short read used to keep a whole 128 KiB read buffer queued (~4 KiB RSS per
# byte, ~1 GB per session). Now short reads are copied into requests of their size and the
# backpressure counts the memory queued, not only the bytes (PROTOCOL.md, "Relay", limits):
# the server's RSS must stay within a few MB, and the session still delivers every byte once
# the reader reads again.
source "$(dirname "$0")/../integration/lib.sh"

command -v python3 >/dev/null || { echo "SKIPPED: python3 is not installed" >&2; exit 77; }
[ -r /proc/self/status ] || { echo "SKIPPED: no /proc" >&2; exit 77; }

start_server
# SERVER_PID is the `timeout` wrapper's; the server is its child
SRV=$(pgrep -P "$SERVER_PID" | head -n 1)
[ -n "$SRV" ] || die "cannot find the server process under $SERVER_PID"
timeout -k 2 60 python3 "$(dirname "$0")/relay_dribble.py" "$SERVER_PORT" "$SRV" 20000 \
    >"$WORK/result" 2>"$WORK/dribble.err" || die "the attacker failed (see dribble.err)"
cat "$WORK/result" >&2
res() { awk -v w="$1" '$1 == w { print $2 }' "$WORK/result"; }
growth=$(($(res rss_after) - $(res rss_before)))
check "the attacker dribbled bytes into the relay ($(res dribble) 1-byte segments sent)" \
    [ "$(res dribble)" -ge 2000 ]
check "server RSS grew by ${growth} KiB during the dribble (at most 8192)" [ "$growth" -le 8192 ]
check "the reader got every byte ($(res got) of $(($(res bulk) + $(res dribble))))" \
    [ "$(res got)" -eq $(($(res bulk) + $(res dribble))) ]
check "the bytes arrived in order and unchanged" [ "$(res intact)" = 1 ]
check "the session still carries the other direction" [ "$(res back)" = 1 ]
check "the server is still running" server_alive
finish
