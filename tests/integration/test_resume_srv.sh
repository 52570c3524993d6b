#!/usr/bin/env bash
# The server's side of resumable sessions (PROTOCOL.md section 18), raw (resume_srv.py): the
# challenge offers resume (not with --no-resume), hello.features reach the other peer's punch,
# connect.resume both punches, hello.replace takes an id from a connection of the same key.
# And the peer's side of `replaced`: a clear message, exit 2, no reconnect.
source "$(dirname "$0")/lib.sh"

PY="$TESTDIR/resume_srv.py"
raw() { # DESCRIPTION MODE ARGS...: runs resume_srv.py, pass/fail by its status
    local what=$1
    shift
    timeout -k 2 60 python3 "$PY" "$@" >"$WORK/raw-$1.log" 2>&1
    local rc=$?
    if [ "$rc" -eq 0 ]; then
        pass "$what ($(grep -c '^ok' "$WORK/raw-$1.log") checks)"
    else
        grep -v '^ok' "$WORK/raw-$1.log" >&2
        fail "$what: resume_srv.py $1 exit $rc"
    fi
}

stop_server() {
    kill -TERM "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
}

start_server
raw "resume offered: features, resume root, replace" local 127.0.0.1 "$SERVER_PORT"
check "the server logs the replace" grep -q "replace rep-.*gives way to the one from" "$SERVER_LOG"
check "and the punch that resumes" grep -q "punch sent: .*, resuming 0123456789abcdef" "$SERVER_LOG"
stop_server

start_server --no-resume
raw "--no-resume: nothing offered, nothing passed on, replace ignored" off 127.0.0.1 "$SERVER_PORT"
stop_server

head -c 32 /dev/urandom >"$WORK/secret"
start_server --secret-file "$WORK/secret"
raw "with a secret: the admit covers features and replace" secret 127.0.0.1 "$SERVER_PORT" \
    "$WORK/secret"
stop_server

check "--help documents --no-resume" sh -c "'$RENDEZVOUS' --help | grep -q -- --no-resume"

# ---- the peer told `replaced`: says so, exits 2 (EXIT_SERVER), does not reconnect
FAKE=$(free_port) || die "no free port"
spawn 40 python3 "$PY" fakeserver "$FAKE" "$WORK/fake.count" >"$WORK/fake.log" 2>&1
wait_until 5 listening "$FAKE" || die "the fake server does not listen"
ID=$(uid gone)
TCPUNCH_HOME=$WORK/home-r timeout -k 2 20 "$TCPUNCH" -s "127.0.0.1:$FAKE" -i "$ID" listen \
    </dev/null >/dev/null 2>"$WORK/replaced.err"
check_rc "listen told replaced: exit 2" 2 $?
check "it says another connection of ours took the id" \
    grep -q "another connection of ours (same key) took the id $ID" "$WORK/replaced.err"
sleep 1.5
check "it did not reconnect (one connection)" test "$(cat "$WORK/fake.count")" -eq 1

finish
