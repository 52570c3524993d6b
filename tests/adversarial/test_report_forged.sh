#!/usr/bin/env bash
# Forged traversal reports (PROTOCOL.md, "Traversal reports"). A peer may report only on a
# session it was punched into, and only once: a registered stranger who learnt a real pair's
# session id (here from the victims' own log) cannot count a result for it, nor use up the
# victims' reports; a second report on one's own session and a report on a made-up session are
# not counted; 10000 reports in one burst cost the server no more than pongs do (no answer, a
# table of 4, throttled log lines): another peer's pings are answered at once throughout and
# nobody is dropped. Asserted on the server's -v lines "report from ID (ADDR): session S ..."
# and "report refused from ID (ADDR): session S: REASON".
source "$(dirname "$0")/../integration/lib.sh" "$@"

command -v python3 >/dev/null || { echo "SKIPPED: python3 is not installed" >&2; exit 77; }
start_server

# the victims: a real pair; its session as their -v logs show it
echo "victims" >"$WORK/a.in"
: >"$WORK/b.in"
bid=$(uid vb)
aid=$(uid va)
run_pair "$bid" "$aid" "$WORK/a.in" "$WORK/b.in" -v
check_rc "the victims' pair: connect" 0 "$RC_A"
check_rc "the victims' pair: listen" 0 "$RC_B"
S=$(sed -n -E 's/.*report sent: session ([0-9a-f]{32}) .*/\1/p' "$WORK/a.err" | head -n 1)
check "the victims' session is in their log" [ -n "$S" ]
counted() { grep -c -E "report from $1 \([^)]*\): session $2 " "$SERVER_LOG"; }
refused() { grep -c -E "report refused from $1 \([^)]*\): session $2: $3\$" "$SERVER_LOG"; }
wait_until 5 bash -c "[ \$(grep -c -E 'report from ($aid|$bid) .*session $S ' '$SERVER_LOG') -eq 2 ]"

P=mal$$
mark=$(log_mark)
timeout -k 2 60 python3 "$(dirname "$0")/report_forged.py" "$SERVER_PORT" "$S" "$P" 10000 \
    >"$WORK/result" 2>"$WORK/forged.err"
check_rc "the forger ran" 0 $?
cat "$WORK/result" >&2
res() { awk -v w="$1" '$1 == w { print $2 }' "$WORK/result"; }
S2=$(res session)

check "the stranger's report on the victims' session was refused (unknown session)" \
    [ "$(refused "$P-x" "$S" "unknown session")" -eq 1 ]
check "... and not counted" [ "$(counted "$P-x" "$S")" -eq 0 ]
check "the victims' session counts their two reports only" \
    [ "$(grep -c -E "report from [^ ]+ \([^)]*\): session $S " "$SERVER_LOG")" -eq 2 ]
check "a peer's first report on its own session is counted" [ "$(counted "$P-a" "$S2")" -eq 1 ]
check "it is counted with the server's view of the NAT kinds (none probed), not the claim" \
    grep -q -E "report from $P-a \([^)]*\): session $S2 direct via public, 1 attempt, 5 ms, nat unknown/unknown \(says independent\)" \
    "$SERVER_LOG"
check "its partner's too, on its own connection" \
    grep -q -E "report from $P-b \([^)]*\): session $S2 relay via relay" "$SERVER_LOG"
check "the second report on its own session was refused (already reported)" \
    [ "$(refused "$P-a" "$S2" "already reported")" -ge 1 ]
check "a report on a made-up session was refused (unknown session)" \
    grep -q -E "report refused from $P-a \([^)]*\): session [0-9a-f]{32}: unknown session" \
    "$SERVER_LOG"
check "no report was answered with a line" [ "$(res answered)" = 0 ]
check "the flood counted nothing more for its session" [ "$(counted "$P-a" "$S2")" -eq 1 ]
nref=$(grep -c "report refused from $P-a " "$SERVER_LOG")
check "the flood's refusals were throttled in the log ($nref lines for 10000)" [ "$nref" -le 10 ]
wait_until 5 grep -q -E "refused $P-a \([^)]*\): [0-9]+ more requests \(not logged\)" "$SERVER_LOG"
check "... and summed up in one line" \
    grep -q -E "refused $P-a \([^)]*\): [0-9]+ more requests \(not logged\)" "$SERVER_LOG"
check "another peer's pings were answered during the flood ($(res ping_count) pongs, none lost)" \
    [ "$(res ping_lost)" = 0 -a "$(res ping_count)" -ge 5 ]
check "within 500 ms each (max $(res ping_max_ms) ms)" [ "$(res ping_max_ms)" -lt 500 ]
check "the stranger is still registered (a refused report is not fatal)" [ "$(res alive_x)" = yes ]
check "the flooder is still registered" [ "$(res alive_a)" = yes ]
check "the server is still running" server_alive
finish
