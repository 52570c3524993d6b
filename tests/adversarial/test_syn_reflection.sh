#!/usr/bin/env bash
# SYN reflection (issue 12, part 1): a stranger registers with endpoints of a host that never
# took part (the victim) and asks an honest peer for a punch, or makes it ask; the peer then
# dials the victim. Before the fix the server passed every self-declared endpoint on, and the
# peer re-dialled each with bursts until --timeout: hundreds of SYNs per `connect`. Now the server
# passes self-declared LAN endpoints only to a peer behind the same public address, IPv6 ones only
# once a probe over IPv6 proved them (punch.observed6), and the peer spends at most
# PUNCH_BUDGET_DECLARED connection attempts on each self-declared candidate and
# PUNCH_BUDGET_TOTAL per punch (PROTOCOL.md, "Punch budget").
source "$(dirname "$0")/../integration/lib.sh"

command -v python3 >/dev/null || { echo "SKIPPED: python3 is not installed" >&2; exit 77; }
PY="$(dirname "$0")/syn_reflection.py"
DECLARED_MAX=16 OBSERVED_MAX=384 TOTAL_MAX=512

P4=$(free_port) || die "no free port"
P6=$(free_port) || die "no free port"
start_server --no-relay --probe-listen "127.0.0.1:$P4" --probe-listen "[::1]:$P6"

# ---- 1. what the server hands out (raw peers; 127.0.0.2 is "another public address")
timeout -k 2 40 python3 "$PY" filter "$SERVER_PORT" "$P6" >"$WORK/filter.log" 2>&1
rc=$?
cat "$WORK/filter.log" >&2
check "the server passes on only observed endpoints (filter.log: $(grep -c '^ok' "$WORK/filter.log") ok)" \
    [ "$rc" -eq 0 ]

# attacker ID SRC EP...: a raw peer registered from source address SRC with those endpoints,
# held in the background
attacker() {
    local id=$1 src=$2
    shift 2
    spawn 60 python3 "$PY" attacker "$SERVER_PORT" "$src" "$id" "$@" >"$WORK/$id.out" \
        2>"$WORK/$id.err"
    ATTACKER_PID=$!
    wait_until 10 grep -q registered "$WORK/$id.out" || die "the attacker $id did not register"
}

# ---- 2. a self-declared LAN endpoint behind the same public address: counted at the victim
VPORT=$(free_port) || die "no free port"
spawn 30 python3 "$PY" victim 127.0.0.5 "$VPORT" "$WORK/victim.count" 20 2>"$WORK/victim.err"
VICTIM_PID=$!
wait_until 5 test -s "$WORK/victim.count" || die "the victim listener did not start"
MAL=$(uid mal)
attacker "$MAL" 127.0.0.1 "127.0.0.5:$VPORT"
timeout -k 2 20 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$(uid honest)" --timeout 4 -v \
    connect "$MAL" </dev/null >/dev/null 2>"$WORK/honest1.err"
rc=$?
kill "$ATTACKER_PID" 2>/dev/null
n=$(cat "$WORK/victim.count")
check_rc "the punch to the attacker fails (nobody answers it)" 4 "$rc"
check "the victim 127.0.0.5:$VPORT saw at most $DECLARED_MAX connections in a 4 s punch (saw $n)" \
    [ "$n" -le "$DECLARED_MAX" ]
check "... and the punch did try it (saw $n > 0: the endpoint is dialled, within budget)" \
    [ "$n" -gt 0 ]
kill "$VICTIM_PID" 2>/dev/null

# ---- 3. the budget of a punch whose every candidate answers with RST: the attacker's own
# (observed) endpoint and 8 self-declared ones on closed ports
EPS=()
for i in 1 2 3 4 5 6 7 8; do EPS+=("127.0.0.6:$((VPORT + i))"); done
MAL=$(uid mal)
attacker "$MAL" 127.0.0.1 "${EPS[@]}"
timeout -k 2 20 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$(uid honest)" --timeout 6 \
    connect "$MAL" </dev/null >/dev/null 2>"$WORK/honest2.err"
rc=$?
kill "$ATTACKER_PID" 2>/dev/null
check_rc "the punch against RST-answering candidates fails" 4 "$rc"
# the peer's own account: "EP (KIND): WHAT after N attempts" for each candidate
grep -o '[^;:]*([a-z-]*): [^;]* after [0-9]* attempts\?' "$WORK/honest2.err" |
    sed -E 's/^ *//; s/^(.*) \(([a-z-]+)\): .* after ([0-9]+) attempts?$/\2 \3 \1/' >"$WORK/tries"
cat "$WORK/tries" >&2
total=$(awk '{ s += $2 } END { print s + 0 }' "$WORK/tries")
public=$(awk '$1 == "public" { print $2 }' "$WORK/tries")
declared=$(awk '$1 != "public" && $2 > m { m = $2 } END { print m + 0 }' "$WORK/tries")
check "the peer reports its candidates (public and self-declared: $(wc -l <"$WORK/tries"))" \
    [ "$(wc -l <"$WORK/tries")" -ge 9 ]
check "an observed candidate gets at most $OBSERVED_MAX attempts (got ${public:-none})" \
    [ -n "$public" ] && [ "${public:-0}" -le "$OBSERVED_MAX" ]
check "a self-declared candidate gets at most $DECLARED_MAX attempts (most: $declared)" \
    [ "$declared" -le "$DECLARED_MAX" ]
check "the whole punch makes at most $TOTAL_MAX attempts (made $total)" [ "$total" -le "$TOTAL_MAX" ]
finish
