# Shared helpers for the loopback integration tests (sourced, bash).
# Usage in a test:  source lib.sh "$@"   with $1 = tcpunch, $2 = tcpunch-rendezvous.
# Every process runs under `timeout`; every background process is killed by the EXIT trap.

set -u

TCPUNCH=${1:?usage: test.sh TCPUNCH RENDEZVOUS}
RENDEZVOUS=${2:?usage: test.sh TCPUNCH RENDEZVOUS}
TESTDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TEST_NAME=$(basename "$0" .sh)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tcpunch-$TEST_NAME.XXXXXX")
# a private server's secret is something a test passes explicitly
unset TCPUNCH_SECRET_FILE
BG_PIDS=()
FAILS=0
SERVER_PID=
SERVER_LOG=
SERVER_PORT=

for bin in "$TCPUNCH" "$RENDEZVOUS"; do
    if [ ! -x "$bin" ]; then
        echo "FAIL: $bin is not an executable" >&2
        exit 1
    fi
done

# Each peer is a separate user: its own identity and known_peers under $WORK/home/NAME, NAME
# being its id (-i/--id, else $TCPUNCH_ID), else its --port, else "default". A test that sets
# TCPUNCH_HOME itself keeps it.
# peer_home_wrapper REAL OUT: writes OUT, a script that picks the home and execs REAL.
peer_home_wrapper() {
    cat >"$2" <<EOF_WRAPPER
#!/bin/bash
if [ -z "\${TCPUNCH_HOME:-}" ]; then
    name=\${TCPUNCH_ID:-} port=
    args=("\$@")
    for ((i = 0; i < \${#args[@]}; i++)); do
        case \${args[i]} in
        -i | --id) name=\${args[i + 1]:-} ;;
        --id=*) name=\${args[i]#--id=} ;;
        -i?*) name=\${args[i]#-i} ;;
        -p | --port) port=\${args[i + 1]:-} ;;
        --port=*) port=\${args[i]#--port=} ;;
        esac
    done
    [ -n "\$name" ] || name=\${port:+port-\$port}
    export TCPUNCH_HOME="$WORK/home/\${name:-default}"
fi
exec "$1" "\$@"
EOF_WRAPPER
    chmod +x "$2"
}
# $TCPUNCH is the wrapper from here on; the binary itself is $TCPUNCH_BIN.
TCPUNCH_BIN=$TCPUNCH
TCPUNCH=$WORK/tcpunch
peer_home_wrapper "$TCPUNCH_BIN" "$TCPUNCH"

cleanup() {
    local p
    for p in "${BG_PIDS[@]}"; do
        kill "$p" 2>/dev/null
    done
    for p in "${BG_PIDS[@]}"; do
        wait "$p" 2>/dev/null
    done
    if [ "$FAILS" -eq 0 ] && [ -z "${KEEP_WORK:-}" ]; then
        rm -rf "$WORK"
    else
        echo "(work files kept in $WORK)" >&2
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Shows the last lines of every log in $WORK, to explain a failure.
dump_logs() {
    local f
    for f in "$WORK"/*.err "$WORK"/*.log; do
        [ -s "$f" ] || continue
        echo "---- $(basename "$f") (last 20 lines)" >&2
        tail -n 20 "$f" | cat -v >&2
    done
}

fail() {
    echo "FAIL [$TEST_NAME]: $*" >&2
    FAILS=$((FAILS + 1))
}

# Ends the test now (after a failure that makes the rest meaningless).
die() {
    fail "$@"
    dump_logs
    exit 1
}

pass() {
    echo "ok   [$TEST_NAME]: $*"
}

# The exit status of the test: failures counted by fail().
finish() {
    if [ "$FAILS" -gt 0 ]; then
        dump_logs
        echo "$TEST_NAME: $FAILS failure(s)" >&2
        exit 1
    fi
    echo "$TEST_NAME: all passed"
    exit 0
}

# check DESCRIPTION COMMAND...: runs a test command, pass/fail by its status.
check() {
    local what=$1
    shift
    if "$@"; then
        pass "$what"
    else
        fail "$what"
    fi
}

# check_rc DESCRIPTION WANT GOT
check_rc() {
    if [ "$3" -eq "$2" ]; then
        pass "$1: exit $3"
    else
        fail "$1: exit $3, want $2"
    fi
}

# A TCP port in 20000-60000 that nothing uses (listening or connected) right now.
free_port() {
    local i p
    for i in $(seq 1 100); do
        p=$((20000 + RANDOM % 40001))
        if [ -z "$(ss -Htan "( sport = :$p or dport = :$p )" 2>/dev/null)" ]; then
            echo "$p"
            return 0
        fi
    done
    echo "no free port found" >&2
    return 1
}

# Whether something listens on 127.0.0.1:PORT (or the wildcard).
listening() {
    [ -n "$(ss -Htln "sport = :$1" 2>/dev/null)" ]
}

# wait_until SECONDS COMMAND...: polls every 50 ms.
wait_until() {
    local limit=$(($1 * 20)) i
    shift
    for ((i = 0; i < limit; i++)); do
        if "$@"; then
            return 0
        fi
        sleep 0.05
    done
    return 1
}

# Starts a background command under timeout; its pid goes to $! and BG_PIDS.
# spawn SECONDS COMMAND... (redirections are the caller's, e.g. spawn 30 cmd <in >out 2>err)
spawn() {
    local secs=$1
    shift
    # 0<&0: an asynchronous command without its own stdin redirection would get /dev/null,
    # not the stdin given to this function
    timeout -k 2 "$secs" "$@" 0<&0 &
    BG_PIDS+=($!)
}

# Starts the rendezvous server on a free loopback port; sets SERVER_PORT, SERVER_PID,
# SERVER_LOG. Extra arguments go to the server.
# TCPUNCH_TEST_RELAY_COPY=1 (the *.copy tests in CTest): every server copies relayed bytes
# through user space (--relay-copy) instead of splicing them, so the relay tests cover both paths
RELAY_PATH_ARGS=()
[ "${TCPUNCH_TEST_RELAY_COPY:-0}" = 1 ] && RELAY_PATH_ARGS=(--relay-copy)

start_server() {
    local try
    SERVER_LOG=$WORK/server.log
    for try in 1 2 3; do
        SERVER_PORT=$(free_port) || die "no free port"
        # all peers of a test come from 127.0.0.1: per-address limits only where a test sets them
        timeout -k 2 120 "$RENDEZVOUS" -v -l "127.0.0.1:$SERVER_PORT" --max-per-ip 0 \
            --rate-per-ip 0 --connect-rate 0 "${RELAY_PATH_ARGS[@]}" "$@" >"$WORK/server.out" \
            2>>"$SERVER_LOG" &
        SERVER_PID=$!
        BG_PIDS+=($SERVER_PID)
        if wait_until 5 listening "$SERVER_PORT"; then
            return 0
        fi
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            die "rendezvous started but does not listen on 127.0.0.1:$SERVER_PORT after 5 s"
        fi
        # it exited: maybe the port was taken in between; try another
    done
    die "rendezvous would not start (see server.log)"
}

# under_timeout PID: the process that the `timeout` PID runs (timeout passes TERM on, but a
# KILL or STOP must go to the process itself), or PID when it has no child (any more).
under_timeout() {
    local child
    child=$(pgrep -P "$1" | head -n 1)
    echo "${child:-$1}"
}

# start_echo SECONDS: the service behind a forwarder in the tests, fwdtool.py's echo server on
# 127.0.0.1:$ECHO_PORT (a free port) for SECONDS at most; it counts its connections, which
# echo_conns prints.
start_echo() {
    ECHO_PORT=$(free_port) || die "no free port"
    : >"$WORK/echo.count"
    spawn "$1" python3 "$TESTDIR/fwdtool.py" echo "$ECHO_PORT" "$WORK/echo.count"
    wait_until 5 listening "$ECHO_PORT" || die "the echo server does not listen"
}

echo_conns() {
    wc -l <"$WORK/echo.count"
}

server_alive() {
    kill -0 "$SERVER_PID" 2>/dev/null
}

# The server log's current size: pass it to wait_registered so that only what the server
# logs from now on counts (an id used before is already in the log).
log_mark() {
    stat -c %s "$SERVER_LOG"
}

# log_since OFFSET: the server log from byte OFFSET on.
log_since() {
    tail -c +"$(($1 + 1))" "$SERVER_LOG"
}

registered_since() { # ID OFFSET
    log_since "$2" | grep -q -F -- "$1"
}

# wait_registered ID [OFFSET]: waits until the server log (after OFFSET) mentions ID — its
# register line — so a connect that follows does not race the listener's registration.
wait_registered() {
    wait_until 10 registered_since "$1" "${2:-0}" ||
        die "the server never logged the registration of \"$1\" (10 s)"
}

# run_pair LISTEN_ID CONNECT_ID A_IN B_IN [extra flags for both]
# B (LISTEN_ID) listens, A (CONNECT_ID) connects to it. stdin of A is A_IN, of B is B_IN.
# Outputs: $WORK/a.out $WORK/b.out $WORK/a.err $WORK/b.err; exit codes RC_A, RC_B.
run_pair() {
    local bid=$1 aid=$2 ain=$3 bin=$4
    shift 4
    local pid_b mark
    mark=$(log_mark)
    spawn 60 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$bid" "$@" listen <"$bin" >"$WORK/b.out" \
        2>"$WORK/b.err"
    pid_b=$!
    wait_registered "$bid" "$mark"
    timeout -k 2 60 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$aid" "$@" connect "$bid" \
        <"$ain" >"$WORK/a.out" 2>"$WORK/a.err"
    RC_A=$?
    wait "$pid_b"
    RC_B=$?
}

sha() {
    sha256sum <"$1" | cut -d' ' -f1
}

# same_file DESCRIPTION EXPECTED ACTUAL: byte-identical (sizes and sha256 in the message).
same_file() {
    if cmp -s "$2" "$3"; then
        pass "$1 ($(stat -c %s "$3") bytes, sha256 $(sha "$3" | cut -c1-16)...)"
    else
        fail "$1: differs: expected $(stat -c %s "$2") bytes sha256 $(sha "$2"), got $(stat -c %s "$3") bytes sha256 $(sha "$3")"
    fi
}

# A unique peer id for this test run.
uid() {
    echo "$1-$$-$RANDOM"
}
