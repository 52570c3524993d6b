#!/bin/bash
# Traversal reports end to end on loopback (PROTOCOL.md, "Traversal reports"): after each
# introduction both peers tell the server how it ended, and the server counts each report of a
# session the connection was punched into once, with its own view of the pair's NAT kinds. Its
# -v log says so: "report from ID (ADDR): session S RESULT via CANDIDATE, ...". A direct pair
# reports direct, a relayed pair relay, a punch to a peer that never answers failed, and
# --no-report (flag or config key) sends nothing.
source "$(dirname "$0")/lib.sh" "$@"

# session_of MARK: the session of the one punch sent since MARK
session_of() {
    log_since "$1" | sed -n -E 's/.*punch sent: session ([0-9a-f]{32}),.*/\1/p' | head -n 1
}
# reported ID MARK SESSION RESULT CANDIDATE_RE: the server counted ID's report on SESSION
reported() {
    log_since "$2" | grep -q -E "report from $1 \([^)]*\): session $3 $4 via $5, [0-9]+ attempts?, [0-9]+ ms, nat "
}

echo "report me" >"$WORK/a.in"
: >"$WORK/b.in"
start_server

# a direct pair: both sides' reports counted, the winner's candidate named
bid=$(uid rep-b)
aid=$(uid rep-a)
mark=$(log_mark)
run_pair "$bid" "$aid" "$WORK/a.in" "$WORK/b.in" -v
check_rc "direct pair: connect" 0 "$RC_A"
check_rc "direct pair: listen" 0 "$RC_B"
sess=$(session_of "$mark")
check "direct pair: the server logged the punch's session" [ -n "$sess" ]
check "direct pair: the connect side's report was counted as direct" \
    wait_until 5 reported "$aid" "$mark" "$sess" direct "(public|port-preserved|lan|ipv6|inbound)"
check "direct pair: the listen side's report was counted as direct" \
    wait_until 5 reported "$bid" "$mark" "$sess" direct "(public|port-preserved|lan|ipv6|inbound)"
check "direct pair: no report was refused" \
    bash -c "! tail -c +$((mark + 1)) '$SERVER_LOG' | grep -q 'report refused'"
check "direct pair: the connect side says it sent its report (-v)" \
    grep -q -E "report sent: session $sess direct via" "$WORK/a.err"
check "direct pair: the server's view of the NAT kinds, not the peer's claim" \
    bash -c "tail -c +$((mark + 1)) '$SERVER_LOG' | grep -E 'report from $aid .*session $sess' | grep -q -E 'nat (unknown|independent|dependent)/(unknown|independent|dependent) \(says '"

# a relayed pair (--relay-only on one side, as test_relay.sh forces it): both report relay
bid=$(uid rel-b)
aid=$(uid rel-a)
mark=$(log_mark)
spawn 60 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$bid" --relay-only listen <"$WORK/b.in" \
    >"$WORK/b.out" 2>"$WORK/b.err"
pid_b=$!
wait_registered "$bid" "$mark"
timeout -k 2 60 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$aid" connect "$bid" \
    <"$WORK/a.in" >"$WORK/a.out" 2>"$WORK/a.err"
check_rc "relayed pair: connect" 0 $?
wait "$pid_b"
check_rc "relayed pair: listen" 0 $?
sess=$(session_of "$mark")
check "relayed pair: the connect side's report was counted as relay" \
    wait_until 5 reported "$aid" "$mark" "$sess" relay relay
check "relayed pair: the listen side's report was counted as relay" \
    wait_until 5 reported "$bid" "$mark" "$sess" relay relay

# a failed punch: the peer takes its punch and never dials nor answers (test_relay.sh's ghost)
cat >"$WORK/ghost.py" <<'GHOST'
import json, socket, sys, time
import tpauth
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
f = s.makefile("rb")
nonce = json.loads(f.readline())["nonce"]
hello = tpauth.hello_msg(tpauth.Identity(sys.argv[2]), nonce, sys.argv[2])
s.sendall((json.dumps(hello) + "\n").encode())
f.readline()
s.settimeout(20)
try:
    f.readline()
    time.sleep(8)
except OSError:
    pass
GHOST
gid=$(uid ghost)
aid=$(uid to-ghost)
mark=$(log_mark)
PYTHONPATH="$TESTDIR" spawn 30 python3 "$WORK/ghost.py" "$SERVER_PORT" "$gid" >/dev/null 2>&1
wait_registered "$gid" "$mark"
timeout -k 2 30 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$aid" -t 2 --no-relay connect "$gid" \
    </dev/null >/dev/null 2>"$WORK/ghost.err"
check_rc "failed punch: connect fails" 4 $?
sess=$(session_of "$mark")
check "failed punch: the report was counted as failed, no candidate" \
    wait_until 5 reported "$aid" "$mark" "$sess" failed none

# --no-report, as a flag and as a config key: the pair connects, the server hears no report
bid=$(uid quiet-b)
aid=$(uid quiet-a)
mark=$(log_mark)
run_pair "$bid" "$aid" "$WORK/a.in" "$WORK/b.in" --no-report
check_rc "--no-report: connect" 0 "$RC_A"
check_rc "--no-report: listen" 0 "$RC_B"
sleep 0.5
check "--no-report: no report reached the server" \
    bash -c "! tail -c +$((mark + 1)) '$SERVER_LOG' | grep -q -E 'report (from|refused from) ($aid|$bid) '"
mkdir -p "$WORK/cfg"
printf 'no-report = true\n' >"$WORK/cfg/config"
TCPUNCH_HOME="$WORK/cfg" "$TCPUNCH" config >"$WORK/c.out" 2>"$WORK/c.err"
check "--no-report's config key: tcpunch config shows it from the file" \
    grep -q -E '^no-report = true +# ' "$WORK/c.out"
"$TCPUNCH" --no-report config >"$WORK/c2.out" 2>&1
check "--no-report on the command line: tcpunch config shows it" \
    grep -q -E '^no-report = true +# ' "$WORK/c2.out"
"$TCPUNCH" config >"$WORK/c3.out" 2>&1
check "the default: no-report false" grep -q -E '^no-report = false +# default$' "$WORK/c3.out"

check "the server is still running" server_alive
finish
