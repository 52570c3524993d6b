#!/bin/bash
# --metrics-listen on loopback: /metrics and /healthz answer; a direct pair, a relayed pair, a
# no-path pair and a refused hello each move exactly the counters they should, by the exact
# delta; every line of the exposition parses; the option's usage and listen errors.
source "$(dirname "$0")/lib.sh" "$@"

command -v curl >/dev/null || {
    echo "SKIPPED: curl is not installed"
    exit 77
}

MX_PORT=$(free_port) || die "no free port"
PROBE_PORT=$(free_port) || die "no free port"
start_server --metrics-listen "127.0.0.1:$MX_PORT" --probe-listen "127.0.0.1:$PROBE_PORT"
wait_until 5 listening "$MX_PORT" || die "the metrics port does not listen"
MX=http://127.0.0.1:$MX_PORT

scrape() { # into $WORK/m.txt; fails on anything but a 200
    curl -s -f --max-time 5 -o "$WORK/m.txt" "$MX/metrics"
}
# metric 'NAME{LABELS}': its value in the last scrape (empty when absent)
metric() {
    awk -v k="$1" '$1 == k { print $2; exit }' "$WORK/m.txt"
}
# A snapshot of the last scrape, so that deltas are taken against it.
snap() {
    cp "$WORK/m.txt" "$WORK/m0.txt"
}
was() {
    awk -v k="$1" '$1 == k { print $2; exit }' "$WORK/m0.txt"
}
# sumdelta DESCRIPTION 'NAME{LABEL="V"' WANT: the samples starting so (every other label) moved by
# exactly WANT in all since snap
sumof() { awk -v k="$1" 'index($1, k) == 1 { s += $2 } END { print s + 0 }' "$2"; }
sumdelta() {
    local now before
    now=$(sumof "$2" "$WORK/m.txt")
    before=$(sumof "$2" "$WORK/m0.txt")
    if [ "$((now - before))" -eq "$3" ]; then
        pass "$1: $2...} $before -> $now"
    else
        fail "$1: $2...} $before -> $now, want +$3"
    fi
}
# delta DESCRIPTION 'NAME{LABELS}' WANT: the value moved by exactly WANT since snap
delta() {
    local now before
    now=$(metric "$2")
    before=$(was "$2")
    if [ -n "$now" ] && [ -n "$before" ] && [ "$((now - before))" -eq "$3" ]; then
        pass "$1: $2 $before -> $now"
    else
        fail "$1: $2 ${before:-?} -> ${now:-?}, want +$3"
    fi
}

# ---- the page itself ----
check "GET /metrics answers 200" scrape
ctype=$(curl -s -o /dev/null -w '%{content_type}' "$MX/metrics")
check "content type is the text format 0.0.4 ($ctype)" \
    grep -q '^text/plain; version=0.0.4' <<<"$ctype"
check "GET /healthz answers 200 ok" test "$(curl -s -w '%{http_code}' "$MX/healthz")" = $'ok\n200'
check "another path answers 404" test "$(curl -s -o /dev/null -w '%{http_code}' "$MX/")" = 404
check "POST answers 405" \
    test "$(curl -s -o /dev/null -w '%{http_code}' -d x "$MX/metrics")" = 405
check "every line is HELP, TYPE or a sample with a numeric value" \
    awk '/^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* / { next }
         /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [-+0-9.eE]+$/ { next }
         { print "bad line: " $0; bad = 1 } END { exit bad }' "$WORK/m.txt"
check "every error code is a label from the start" \
    test "$(grep -c '^tcpunch_errors_sent_total{code=' "$WORK/m.txt")" -ge 30
check "zero registrations at start" test "$(metric tcpunch_registrations_total)" = 0
check "no peers at start" test "$(metric 'tcpunch_peers_online{family="ipv4"}')" = 0
check "the build's version" grep -q '^tcpunch_build_info{version="[0-9]' "$WORK/m.txt"
check "resident memory is reported" test "$(metric process_resident_memory_bytes)" -gt 100000
check "open fds are reported" test "$(metric process_open_fds)" -gt 3
check "not draining" test "$(metric tcpunch_draining)" = 0
check "no cluster lines without --redis" bash -c "! grep -q '^tcpunch_cluster_' '$WORK/m.txt'"

head -c 65536 /dev/urandom >"$WORK/a.in"
head -c 65536 /dev/urandom >"$WORK/b.in"

# ---- a direct pair ----
scrape && snap
bid=$(uid mx-b)
mark=$(log_mark)
spawn 60 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$bid" listen <"$WORK/b.in" >"$WORK/b.out" \
    2>"$WORK/b.err"
pid_b=$!
wait_registered "$bid" "$mark"
scrape
delta "a listener online" 'tcpunch_peers_online{family="ipv4"}' 1
delta "a listener online" 'tcpunch_connections{state="live"}' 1
delta "a listener registered" tcpunch_registrations_total 1
# it probes the probe port from its control connection's port: on loopback nothing maps it
probed() {
    scrape && [ "$(metric 'tcpunch_probes_total{mapping="independent"}')" = \
        "$(($(was 'tcpunch_probes_total{mapping="independent"}') + 1))" ]
}
check "the listener's probe counts as mapping independent" wait_until 5 probed
delta "the listener's probe" 'tcpunch_probes_total{mapping="dependent"}' 0
delta "probes are not main-port registrations" tcpunch_registrations_total 1
timeout -k 2 60 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$(uid mx-a)" connect "$bid" \
    <"$WORK/a.in" >"$WORK/a.out" 2>"$WORK/a.err"
check_rc "direct pair: connect side" 0 $?
wait "$pid_b"
check_rc "direct pair: listen side" 0 $?
same_file "direct pair: a -> b" "$WORK/a.in" "$WORK/b.out"
check "direct pair went direct" grep -q "connected to .*: direct" "$WORK/a.err"
wait_until 5 bash -c "curl -s '$MX/metrics' | grep -q '^tcpunch_peers_online{family=\"ipv4\"} 0$'"
scrape
delta "direct pair" tcpunch_registrations_total 2
delta "direct pair" 'tcpunch_introductions_total{path="direct"}' 1
delta "direct pair" 'tcpunch_introductions_total{path="relay"}' 0
delta "direct pair" tcpunch_relay_sessions_total 0
delta "direct pair: both gone" 'tcpunch_peers_online{family="ipv4"}' 0
# both peers report the outcome (PROTOCOL.md, "Traversal reports")
sumdelta "direct pair: both reports" 'tcpunch_punch_results_total{result="direct",' 2
sumdelta "direct pair: no relay report" 'tcpunch_punch_results_total{result="relay",' 0
sumdelta "direct pair: the histogram" 'tcpunch_punch_duration_seconds_count{result="direct"' 2
check "direct pair: at least two connections accepted" \
    test "$(($(metric tcpunch_connections_accepted_total) - $(was tcpunch_connections_accepted_total)))" -ge 2

# ---- a relayed pair ----
snap
bid=$(uid mx-rb)
mark=$(log_mark)
spawn 60 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$bid" --relay-only listen <"$WORK/b.in" \
    >"$WORK/b.out" 2>"$WORK/b.err"
pid_b=$!
wait_registered "$bid" "$mark"
timeout -k 2 60 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$(uid mx-ra)" connect "$bid" \
    <"$WORK/a.in" >"$WORK/a.out" 2>"$WORK/a.err"
check_rc "relayed pair: connect side" 0 $?
wait "$pid_b"
check_rc "relayed pair: listen side" 0 $?
same_file "relayed pair: b -> a" "$WORK/b.in" "$WORK/a.out"
wait_until 5 bash -c "curl -s '$MX/metrics' | grep -q '^tcpunch_relay_sessions_active 0$'"
scrape
delta "relayed pair" tcpunch_registrations_total 2
delta "relayed pair" 'tcpunch_introductions_total{path="relay"}' 1
delta "relayed pair" 'tcpunch_introductions_total{path="direct"}' 0
delta "relayed pair" tcpunch_relay_sessions_total 1
delta "relayed pair: over" tcpunch_relay_sessions_active 0
sumdelta "relayed pair: both reports" 'tcpunch_punch_results_total{result="relay",' 2
sumdelta "relayed pair: no direct report" 'tcpunch_punch_results_total{result="direct",' 0
check "relayed pair: at least the 128 KiB both ways counted as relayed bytes" \
    test "$(($(metric tcpunch_relay_bytes_total) - $(was tcpunch_relay_bytes_total)))" -ge 131072

# ---- no path: --no-relay against --relay-only ----
snap
bid=$(uid mx-nb)
mark=$(log_mark)
spawn 30 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$bid" --relay-only listen </dev/null \
    >/dev/null 2>"$WORK/nb.err"
pid_b=$!
wait_registered "$bid" "$mark"
timeout -k 2 30 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$(uid mx-na)" --no-relay \
    connect "$bid" </dev/null >/dev/null 2>"$WORK/na.err"
check_rc "no-path pair" 4 $?
scrape
delta "no-path pair" 'tcpunch_introductions_total{path="none"}' 1
delta "no-path pair" 'tcpunch_errors_sent_total{code="no-path"}' 1

# ---- a refused hello: the listener's id with another key (bound to the first: id-owned) ----
snap
mark=$(log_mark)
TCPUNCH_HOME=$WORK/home-intruder timeout -k 2 20 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" \
    -i "$bid" listen </dev/null >/dev/null 2>"$WORK/intruder.err"
rc=$?
check "the id's holder with another key is refused (exit $rc)" test "$rc" -ne 0
check "... with id-owned" grep -q "id-owned" <(log_since "$mark")
scrape
delta "refused hello" 'tcpunch_errors_sent_total{code="id-owned"}' 1
delta "refused hello" tcpunch_registrations_total 0
delta "refused hello" 'tcpunch_peers_online{family="ipv4"}' 0
kill "$pid_b" 2>/dev/null
wait "$pid_b" 2>/dev/null

check "/healthz still 200 before SIGTERM" \
    test "$(curl -s -o /dev/null -w '%{http_code}' "$MX/healthz")" = 200

# a peer that registers and then never reads nor closes: after SIGTERM the server waits for it
# (server-shutdown, then its linger: it closes 1.5 s after the error), and meanwhile the metrics port says it drains
cat >"$WORK/holder.py" <<'HOLDER'
import json, socket, sys, time
import tpauth
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
f = s.makefile("rb")
nonce = json.loads(f.readline())["nonce"]
hello = tpauth.hello_msg(tpauth.Identity(sys.argv[2]), nonce, sys.argv[2])
s.sendall((json.dumps(hello) + "\n").encode())
f.readline()
s.settimeout(15)
f.readline()  # server-shutdown, after the SIGTERM
time.sleep(1.5)
HOLDER
hid=$(uid mx-hold)
mark=$(log_mark)
PYTHONPATH="$TESTDIR" spawn 20 python3 "$WORK/holder.py" "$SERVER_PORT" "$hid" >/dev/null 2>&1
wait_registered "$hid" "$mark"
# to the server itself: `timeout` would pass the signal on and also send it to its process
# group, and a second SIGTERM drops the remaining peers at once
kill -TERM "$(under_timeout "$SERVER_PID")"
draining() { [ "$(curl -s -o /dev/null -w '%{http_code}' "$MX/healthz")" = 503 ]; }
check "/healthz answers 503 while the server stops" wait_until 2 draining
check "... and /metrics says tcpunch_draining 1" \
    grep -q '^tcpunch_draining 1$' <(curl -s --max-time 2 "$MX/metrics")
check "... and its body says draining" test "$(curl -s "$MX/healthz")" = draining
wait "$SERVER_PID"
check_rc "the server stops cleanly with the metrics port open" 0 $?
check "the metrics port is closed after the exit" bash -c "! curl -s --max-time 2 '$MX/healthz'"

# ---- IPv6 loopback, where the host has it ----
if ip -6 addr show dev lo 2>/dev/null | grep -q "::1"; then
    start_server --metrics-listen "[::1]:$MX_PORT"
    wait_until 5 listening "$MX_PORT" || fail "nothing listens on [::1]:$MX_PORT"
    check "--metrics-listen [::1]:PORT serves /metrics" \
        grep -q '^tcpunch_registrations_total 0$' <(curl -s -g --max-time 5 "http://[::1]:$MX_PORT/metrics")
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID"
else
    echo "(no ::1 on lo: the IPv6 metrics listener is not tried)"
fi

# ---- the option ----
timeout 5 "$RENDEZVOUS" -l 127.0.0.1:1 --metrics-listen nonsense 2>"$WORK/u.err"
check_rc "--metrics-listen nonsense is a usage error" 1 $?
check "... that names the option" grep -q "invalid --metrics-listen address" "$WORK/u.err"
MAIN2=$(free_port) || die "no free port"
timeout 5 "$RENDEZVOUS" -l "127.0.0.1:$MAIN2" --metrics-listen "127.0.0.1:$MAIN2" 2>"$WORK/b2.err"
check_rc "--metrics-listen on a port in use: cannot listen" 2 $?
check "... with the address in the message" grep -q "cannot listen on 127.0.0.1:$MAIN2" "$WORK/b2.err"
check "the help lists --metrics-listen" grep -q -- "--metrics-listen HOST:PORT" \
    <("$RENDEZVOUS" --help)

finish
