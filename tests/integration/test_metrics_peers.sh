#!/bin/bash
# tcpunch_peers_online (by family) and tcpunch_connections (by state) follow every move of a
# control connection, as conn.c counts them when they move (a scrape never walks the peers):
# IPv4 and IPv6 registrations, an auxiliary connection, a ping, a fatal refusal, closes.
# metrics_peers.py drives raw sockets.
source "$(dirname "$0")/lib.sh" "$@"

command -v python3 >/dev/null || { echo "SKIPPED: python3 is not installed" >&2; exit 77; }
python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null ||
    { echo "SKIPPED: no IPv6 loopback" >&2; exit 77; }

MX_PORT=$(free_port) || die "no free port"
P6=$(free_port) || die "no free port"
start_server --metrics-listen "127.0.0.1:$MX_PORT" -l "[::1]:$P6"
wait_until 5 listening "$MX_PORT" || die "the metrics port does not listen"
spawn 60 python3 "$(dirname "$0")/metrics_peers.py" "$SERVER_PORT" "$P6" "$MX_PORT" \
    >"$WORK/result" 2>"$WORK/py.err"
wait $!
rc=$?
cat "$WORK/result"
[ -s "$WORK/py.err" ] && cat "$WORK/py.err" >&2
check_rc "metrics_peers.py ($(grep -c '^ok' "$WORK/result") checks passed)" 0 "$rc"
check "the server is still running" server_alive
finish
