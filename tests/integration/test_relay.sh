#!/bin/bash
# The relay fallback end to end on loopback: --relay-only on either side carries 1 MiB each way
# through the server byte for byte and says so; policies that exclude each other, and a server
# without a relay, fail with exit 4 and a clear message; the new flags' usage errors.
source "$(dirname "$0")/lib.sh" "$@"

# relay_pair LISTEN_FLAGS CONNECT_FLAGS: like run_pair, with flags for each side ("" for none).
relay_pair() {
    local lflags=$1 cflags=$2 bid aid pid_b mark
    bid=$(uid relay-b)
    aid=$(uid relay-a)
    mark=$(log_mark)
    # shellcheck disable=SC2086 # the flags are words
    spawn 60 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$bid" $lflags listen <"$WORK/b.in" \
        >"$WORK/b.out" 2>"$WORK/b.err"
    pid_b=$!
    wait_registered "$bid" "$mark"
    # shellcheck disable=SC2086
    timeout -k 2 60 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$aid" $cflags connect "$bid" \
        <"$WORK/a.in" >"$WORK/a.out" 2>"$WORK/a.err"
    RC_A=$?
    wait "$pid_b"
    RC_B=$?
    PAIR_MARK=$mark
}

says_relay() { # FILE: the path line names the relay and the server it went through
    grep -q -E "connected to .*: relay via 127\.0\.0\.1:$SERVER_PORT, [0-9]+ ms; direct skipped: .*relay only" "$1"
}

head -c 1048576 /dev/urandom >"$WORK/a.in"
head -c 1048576 /dev/urandom >"$WORK/b.in"
start_server

for side in listen connect; do
    if [ "$side" = listen ]; then
        relay_pair --relay-only ""
    else
        relay_pair "" --relay-only
    fi
    check_rc "--relay-only on the $side side: connect side" 0 "$RC_A"
    check_rc "--relay-only on the $side side: listen side" 0 "$RC_B"
    same_file "--relay-only on the $side side: 1 MiB a -> b" "$WORK/a.in" "$WORK/b.out"
    same_file "--relay-only on the $side side: 1 MiB b -> a" "$WORK/b.in" "$WORK/a.out"
    check "--relay-only on the $side side: connect side's stderr says relay" says_relay "$WORK/a.err"
    check "--relay-only on the $side side: listen side's stderr says relay" says_relay "$WORK/b.err"
    check "--relay-only on the $side side: the server spliced the session" \
        grep -q "joined, splicing" <(log_since "$PAIR_MARK")
    if [ "${TCPUNCH_TEST_RELAY_COPY:-0}" = 1 ]; then
        check "--relay-only on the $side side: the bytes were copied (--relay-copy)" \
            grep -q "copying through user space (--relay-copy)" <(log_since "$PAIR_MARK")
    else
        check "--relay-only on the $side side: the bytes were spliced in the kernel" \
            grep -q "splicing in the kernel (zero copy)" <(log_since "$PAIR_MARK")
    fi
    check "--relay-only on the $side side: the server logged a clean end with byte counts" \
        grep -q -E "ended after .* [0-9]{7} bytes.* [0-9]{7} bytes: both sides closed" \
        <(log_since "$PAIR_MARK")
    check "--relay-only on the $side side: the punch offered no direct path" \
        grep -q "direct no, relay offered" <(log_since "$PAIR_MARK")
done

# the relay opened at once next to the direct attempts: whichever wins, the bytes arrive intact
relay_pair "--direct-timeout 0" "--direct-timeout 0"
check_rc "--direct-timeout 0 (direct and relay race): connect side" 0 "$RC_A"
check_rc "--direct-timeout 0 (direct and relay race): listen side" 0 "$RC_B"
same_file "--direct-timeout 0: a -> b" "$WORK/a.in" "$WORK/b.out"
same_file "--direct-timeout 0: b -> a" "$WORK/b.in" "$WORK/a.out"
check "--direct-timeout 0: a path line on the connect side" \
    grep -q -E "connected to .*: (direct|relay via)" "$WORK/a.err"

# a peer that never shows up at the relay: the failure says what happened to both paths.
# ghost.py registers, takes the punch, and then stays silent until tcpunch gives up (at most 20 s).
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
ghost_fail() { # DESCRIPTION FLAGS...: tcpunch connects to the ghost and must fail with exit 4
    local what=$1 gid mark
    shift
    gid=$(uid ghost)
    mark=$(log_mark)
    PYTHONPATH="$TESTDIR" spawn 30 python3 "$WORK/ghost.py" "$SERVER_PORT" "$gid" >/dev/null 2>&1
    wait_registered "$gid" "$mark"
    timeout -k 2 30 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$(uid to-ghost)" -t 2 "$@" \
        connect "$gid" </dev/null >/dev/null 2>"$WORK/ghost.err"
    check_rc "$what" 4 $?
}
ghost_fail "relay-only to a peer that never joins the relay" --relay-only
check "relay-only failure names the relay's fate and the skipped direct path" \
    grep -q -E "failed: relay: the other peer did not join at 127\.0\.0\.1:$SERVER_PORT in time; direct skipped: .*relay only" \
    "$WORK/ghost.err"
ghost_fail "direct and relay both failing" --direct-timeout 0.5
check "the failure names the direct attempts and the relay's fate" \
    grep -q -E "failed: direct: .*attempt.*; relay: the other peer did not join at 127\.0\.0\.1:$SERVER_PORT in time" \
    "$WORK/ghost.err"
ghost_fail "direct failing with the relay not yet due" --direct-timeout 5
check "the failure says the relay was not opened yet" \
    grep -q -E "failed: direct: .*; relay: not opened \(--direct-timeout 5\.0 s not reached\)" \
    "$WORK/ghost.err"
ghost_fail "direct failing with --no-relay" --no-relay
check "the failure says the relay was not used" \
    grep -q -E "failed: direct: .*; relay: not used \(--no-relay\)" "$WORK/ghost.err"

# --no-relay against --relay-only: no path; the asking side gets exit 4 and both policies named
bid=$(uid only-relay)
mark=$(log_mark)
spawn 30 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$bid" --relay-only listen </dev/null \
    >/dev/null 2>"$WORK/nb.err"
pid_b=$!
wait_registered "$bid" "$mark"
timeout -k 2 30 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$(uid only-direct)" --no-relay \
    connect "$bid" </dev/null >"$WORK/na.out" 2>"$WORK/na.err"
check_rc "--no-relay connect to a --relay-only listener" 4 $?
check "--no-relay vs --relay-only: says there is no path" grep -q "no path to $bid" "$WORK/na.err"
check "--no-relay vs --relay-only: names both policies" \
    grep -q -E "allows only a relayed connection .* only a direct one" "$WORK/na.err"
check "--no-relay vs --relay-only: nothing on stdout" test ! -s "$WORK/na.out"
check "--no-relay vs --relay-only: the server answered no-path" \
    grep -q "no-path" <(log_since "$mark")
check "the --relay-only listener still waits (no-path is not fatal to it)" kill -0 "$pid_b"
kill "$pid_b" 2>/dev/null
wait "$pid_b" 2>/dev/null

# a server without a relay: --relay-only fails at once, on either side, with exit 4
MAIN_PORT=$SERVER_PORT
start_server --no-relay
T0=$(date +%s)
timeout -k 2 30 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$(uid nr-b)" --relay-only listen \
    </dev/null >/dev/null 2>"$WORK/nr.err"
check_rc "--relay-only listen on a --no-relay server" 4 $?
check "--relay-only on a --no-relay server: clear message" \
    grep -q "does not relay, and --relay-only needs its relay" "$WORK/nr.err"
check "--relay-only on a --no-relay server: fails at once (under 5 s)" \
    test $(($(date +%s) - T0)) -lt 5
bid=$(uid nr-listen)
mark=$(log_mark)
spawn 30 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$bid" listen </dev/null >/dev/null \
    2>"$WORK/nrl.err"
pid_b=$!
wait_registered "$bid" "$mark"
timeout -k 2 30 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$(uid nr-a)" --relay-only connect \
    "$bid" </dev/null >/dev/null 2>"$WORK/nrc.err"
check_rc "--relay-only connect on a --no-relay server" 4 $?
check "--relay-only connect on a --no-relay server: clear message" \
    grep -q "does not relay" "$WORK/nrc.err"
kill "$pid_b" 2>/dev/null
wait "$pid_b" 2>/dev/null
SERVER_PORT=$MAIN_PORT

# usage errors of the new flags
usage_error() { # DESCRIPTION WANT_TEXT ARGS...
    local what=$1 want=$2
    shift 2
    timeout -k 2 10 "$TCPUNCH" "$@" </dev/null >"$WORK/u.out" 2>"$WORK/u.err"
    check_rc "$what" 1 $?
    check "$what: says why" grep -q -e "$want" "$WORK/u.err"
}
usage_error "--no-relay with --relay-only" "exclude each other" \
    -s 127.0.0.1:9 --no-relay --relay-only listen
usage_error "--relay-only with --no-relay" "exclude each other" \
    -s 127.0.0.1:9 listen --relay-only --no-relay
usage_error "--direct-timeout -1" "--direct-timeout" -s 127.0.0.1:9 --direct-timeout -1 listen
usage_error "--direct-timeout abc" "--direct-timeout" -s 127.0.0.1:9 --direct-timeout abc listen
for bad in "--relay-bytes 1X" "--relay-bytes -1" "--relay-rate 5T" "--relay-max 0" \
    "--relay-wait 0" "--relay-seconds x"; do
    # shellcheck disable=SC2086
    timeout -k 2 10 "$RENDEZVOUS" -l 127.0.0.1:9 $bad </dev/null >/dev/null 2>"$WORK/r.err"
    check_rc "tcpunch-rendezvous $bad" 1 $?
    check "tcpunch-rendezvous $bad: names the option" grep -q -e "${bad%% *}" "$WORK/r.err"
done
timeout -k 2 10 "$TCPUNCH" --help >"$WORK/help.out"
for f in --direct-timeout --no-relay --relay-only; do
    check "tcpunch --help lists $f" grep -q -e "$f" "$WORK/help.out"
done
timeout -k 2 10 "$RENDEZVOUS" --help >"$WORK/rhelp.out"
for f in "--no-relay" "--relay-max N.*default 64" "--relay-bytes N" "default 1G" \
    "--relay-seconds N.*default 3600" "--relay-rate N" "--relay-wait SEC" "second (default 30)"; do
    check "tcpunch-rendezvous --help lists $f" grep -q -e "$f" "$WORK/rhelp.out"
done
finish
