#!/usr/bin/env bash
# Hostile clients on the metrics port (--metrics-listen, deploy/METRICS.md "The HTTP side"): a
# huge request head is answered 431 and closed, a slowloris is closed by the 5 s head timeout,
# other paths are 404 and other methods 405, 200 connections at once are closed beyond the 16
# allowed, 300 scrapes in a row are answered; the server's RSS stays within 4 MiB of where it
# started, and after every attack the main port registers a fresh peer within a second.
source "$(dirname "$0")/../integration/lib.sh"

command -v python3 >/dev/null || { echo "SKIPPED: python3 is not installed" >&2; exit 77; }
[ -r /proc/self/status ] || { echo "SKIPPED: no /proc" >&2; exit 77; }

# in a sanitizer build freed memory waits in ASan's quarantine (256 MB by default) and would
# count as growth: what is measured is what the server holds
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=1"
MX_PORT=$(free_port) || die "no free port"
start_server --metrics-listen "127.0.0.1:$MX_PORT"
wait_until 5 listening "$MX_PORT" || die "the metrics port does not listen"
SRV=$(pgrep -P "$SERVER_PID" | head -n 1) # SERVER_PID is the `timeout` wrapper's
[ -n "$SRV" ] || die "cannot find the server process under $SERVER_PID"

PYTHONPATH="$TESTDIR" timeout -k 2 120 python3 "$(dirname "$0")/metrics_hostile.py" \
    "$SERVER_PORT" "$MX_PORT" "$SRV" >"$WORK/result" 2>"$WORK/hostile.err"
rc=$?
cat "$WORK/result"
while read -r verdict what; do
    case "$verdict" in
    ok) pass "$what" ;;
    FAIL) fail "$what" ;;
    esac
done <"$WORK/result"
check_rc "the hostile driver ran to its end" 0 "$rc"
res() { awk -v w="$1" '$1 == w { print $2 }' "$WORK/result"; }
growth=$(($(res rss_peak) - $(res rss_before)))
check "server RSS grew by ${growth} KiB (at most 4096)" [ "$growth" -le 4096 ]
check "the server is still running" server_alive
check "/healthz answers 200 at the end" \
    test "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MX_PORT/healthz")" = 200
finish
