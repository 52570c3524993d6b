#!/usr/bin/env bash
# A peer sends traversal reports only to a server whose challenge offered "report"
# (PROTOCOL.md, "Traversal reports"): to an older server the type is unknown, and an unknown
# type is a fatal error. A fake rendezvous (fakesrv.py) introduces a real pair twice: offering
# the feature, it gets both peers' reports of the session; not offering it (features
# ["birthday"] only), it gets none, and the pair connects all the same.
source "$(dirname "$0")/../integration/lib.sh" "$@"

command -v python3 >/dev/null || { echo "SKIPPED: python3 is not installed" >&2; exit 77; }
ADV=$(cd "$(dirname "$0")" && pwd)
echo "through a fake server" >"$WORK/a.in"
: >"$WORK/b.in"

# fake_pair FEATURES: a pair introduced by a fake server offering FEATURES; its log in
# $WORK/fake-FEATURES.log, exit codes RC_A, RC_B, ids AID, BID
fake_pair() {
    local fport log=$WORK/fake-$1.log pid_b
    fport=$(free_port) || die "no free port"
    spawn 30 python3 "$ADV/fakesrv.py" "$fport" "$log" --features "$1" --lifetime 25
    wait_until 5 listening "$fport" || die "fakesrv.py does not listen"
    BID=$(uid fb)
    AID=$(uid fa)
    spawn 20 "$TCPUNCH" -s "127.0.0.1:$fport" -i "$BID" -t 5 -v listen <"$WORK/b.in" \
        >"$WORK/b.out" 2>"$WORK/b.err"
    pid_b=$!
    wait_until 5 grep -qs "hello $BID main" "$log" || die "the listener did not register"
    timeout -k 2 20 "$TCPUNCH" -s "127.0.0.1:$fport" -i "$AID" -t 5 -v connect "$BID" \
        <"$WORK/a.in" >"$WORK/a.out" 2>"$WORK/a.err"
    RC_A=$?
    wait "$pid_b"
    RC_B=$?
    sleep 0.5 # a report would be in the log by now: it is written before the connection closes
}

fake_pair report
check_rc "offered: connect" 0 "$RC_A"
check_rc "offered: listen" 0 "$RC_B"
check "offered: the connect side reported the session as direct" \
    grep -q -E "^report $AID [0-9a-f]{32} direct " "$WORK/fake-report.log"
check "offered: the listen side too" \
    grep -q -E "^report $BID [0-9a-f]{32} direct " "$WORK/fake-report.log"

fake_pair birthday
check_rc "not offered: connect" 0 "$RC_A"
check_rc "not offered: listen" 0 "$RC_B"
same_file "not offered: the data arrived" "$WORK/a.in" "$WORK/b.out"
check "not offered: no report reached the server" \
    bash -c "! grep -q '^report ' '$WORK/fake-birthday.log'"
check "not offered: the peers say nothing of a report" \
    bash -c "! grep -q 'report sent' '$WORK/a.err' '$WORK/b.err'"
finish
