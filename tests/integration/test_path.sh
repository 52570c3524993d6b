#!/bin/bash
# Path reporting: at the default verbosity each side of a listen/connect pair prints exactly one
# "connected to" line, -q none; --json turns stderr into JSON events (registered, punching,
# connected, closed) whose byte counts equal the bytes actually sent, and a failure into one
# error event. The peers' automatic probe makes the server record mapping "independent".
source "$(dirname "$0")/lib.sh" "$@"

PROBE_PORT=$(free_port)
start_server --probe-listen "127.0.0.1:$PROBE_PORT"
head -c 300000 /dev/urandom >"$WORK/a.in"
head -c 70001 /dev/urandom >"$WORK/b.in"
B=$(uid pb)
A=$(uid pa)

# ---- default verbosity: one path line per side ----
MARK=$(log_mark)
run_pair "$B" "$A" "$WORK/a.in" "$WORK/b.in"
check_rc "default: connect side" 0 "$RC_A"
check_rc "default: listen side" 0 "$RC_B"
same_file "default: alice -> bob" "$WORK/a.in" "$WORK/b.out"
check "default: exactly one path line on the connect side" \
    test "$(grep -c "connected to" "$WORK/a.err")" -eq 1
check "default: exactly one path line on the listen side" \
    test "$(grep -c "connected to" "$WORK/b.err")" -eq 1
PATH_RE='^tcpunch: connected to [^ ]+: direct, 127\.0\.0\.1:[0-9]+ \([a-z-]+\), [0-9]+ ms, [0-9]+ attempts?$'
check "default: the connect side's path line names $B and has the documented shape" \
    grep -q -E "${PATH_RE/\[^ \]+/$B}" "$WORK/a.err"
check "default: the listen side's path line names $A" grep -q -E "${PATH_RE/\[^ \]+/$A}" "$WORK/b.err"
# first contact: the peer's key is recorded (trust on first use), and said once
check "default: first contact: the new peer's fingerprint on the connect side" \
    grep -q -E "^tcpunch: new peer $B, key SHA256:[A-Za-z0-9+/]{43}, recorded in .*/known_peers\$" \
    "$WORK/a.err"
check "default: nothing but the new-peer line and the path line on the connect side" \
    test "$(wc -l <"$WORK/a.err")" -eq 2
# both peers probed from their shared port on their own (welcome had a probe port)
for id in "$A" "$B"; do
    check "the server recorded mapping independent for $id" \
        eval "log_since $MARK | grep -q 'probe from .*: $id, .*mapping independent'"
done

# ---- -q: no path line, nothing at all ----
run_pair "$B" "$A" "$WORK/a.in" "$WORK/b.in" -q
check_rc "-q: connect side" 0 "$RC_A"
check_rc "-q: listen side" 0 "$RC_B"
check "-q: no path line (connect)" test "$(grep -c "connected to" "$WORK/a.err")" -eq 0
check "-q: stderr empty (listen)" test ! -s "$WORK/b.err"

# ---- a known peer: only the path line ----
run_pair "$B" "$A" "$WORK/a.in" "$WORK/b.in"
check "known peer: nothing but the path line on the connect side" \
    test "$(wc -l <"$WORK/a.err")" -eq 1 -a "$(grep -c "connected to" "$WORK/a.err")" -eq 1

# ---- --json: events with the documented fields, byte counts that match ----
# events FILE ID PEER SENT RECEIVED: every stderr line is JSON; registered, punching, connected
# and closed come once each, in that order, with the documented fields.
events() {
    python3 - "$@" <<'EOF'
import json, sys
path, me, peer, sent, received = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
evs = []
for n, line in enumerate(open(path).read().splitlines(), 1):
    try:
        evs.append(json.loads(line))
    except ValueError:
        sys.exit("line %d is not JSON: %r" % (n, line))
names = [e.get("event") for e in evs]
if names != ["registered", "punching", "connected", "closed"]:
    sys.exit("events %s, want registered, punching, connected, closed" % names)
reg, pun, con, clo = evs
def want(cond, what):
    if not cond:
        sys.exit("%s: %s" % (what, json.dumps(evs)))
want(reg["id"] == me and reg["server"].startswith("127.0.0.1:")
     and reg["observed"].startswith("127.0.0.1:"), "registered fields")
want(pun["peer"] == peer and len(pun["session"]) == 32 and pun["role"] in ("initiator", "responder")
     and pun["candidates"] and pun["direct"] is True and isinstance(pun["relay"], bool),
     "punching fields")
want(con["peer"] == peer and con["path"] == "direct" and con["remote"].startswith("127.0.0.1:")
     and isinstance(con["via"], str) and isinstance(con["ms"], int)
     and con["attempts"] >= 1 and con["reason"] is None, "connected fields")
want(clo["peer"] == peer and clo["status"] == 0, "closed fields")
want(clo["sent"] == sent, "closed.sent %s, want %d" % (clo["sent"], sent))
want(clo["received"] == received, "closed.received %s, want %d" % (clo["received"], received))
EOF
}
SA=$(stat -c %s "$WORK/a.in")
SB=$(stat -c %s "$WORK/b.in")
run_pair "$B" "$A" "$WORK/a.in" "$WORK/b.in" --json
check_rc "--json: connect side" 0 "$RC_A"
check_rc "--json: listen side" 0 "$RC_B"
same_file "--json: alice -> bob" "$WORK/a.in" "$WORK/b.out"
same_file "--json: bob -> alice" "$WORK/b.in" "$WORK/a.out"
check "--json: connect side events (sent $SA, received $SB)" events "$WORK/a.err" "$A" "$B" "$SA" "$SB"
check "--json: listen side events (sent $SB, received $SA)" events "$WORK/b.err" "$B" "$A" "$SB" "$SA"
check "--json: no human path line" test "$(grep -c "^tcpunch:" "$WORK/a.err")" -eq 0

# ---- --json failures: one error event, nothing on stdout ----
# error_event FILE EXIT CODE: the last line is the error event; every line is JSON.
error_event() {
    python3 - "$@" <<'EOF'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
evs = [json.loads(l) for l in lines]
if not evs:
    sys.exit("no events")
e = evs[-1]
if e.get("event") != "error" or e.get("exit") != int(sys.argv[2]) or e.get("code") != sys.argv[3] \
        or not e.get("message"):
    sys.exit("last event %r, want error exit %s code %s" % (e, sys.argv[2], sys.argv[3]))
if sum(1 for x in evs if x.get("event") == "error") != 1:
    sys.exit("more than one error event: %r" % evs)
EOF
}
GHOST=$(uid ghost)
timeout -k 2 30 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$(uid pc)" --json connect "$GHOST" \
    </dev/null >"$WORK/g.out" 2>"$WORK/g.err"
check_rc "--json: unknown peer" 3 $?
check "--json: unknown peer: an error event (peer-not-found, exit 3)" \
    error_event "$WORK/g.err" 3 peer-not-found
check "--json: unknown peer: the message names the peer" grep -q -F "$GHOST" "$WORK/g.err"
check "--json: unknown peer: nothing on stdout" test ! -s "$WORK/g.out"
timeout -k 2 30 "$TCPUNCH" --json --bogus listen </dev/null >"$WORK/u.out" 2>"$WORK/u.err"
check_rc "--json: unknown option" 1 $?
check "--json: unknown option: one error event (usage, exit 1)" error_event "$WORK/u.err" 1 usage
check "--json: unknown option: that is all on stderr" test "$(wc -l <"$WORK/u.err")" -eq 1
check "the server is still running" server_alive
finish
