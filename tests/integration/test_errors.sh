#!/bin/bash
# (iv) failures and their exit codes: unknown peer (3), server down (2), id taken (2),
# bad flags (1), --help (0, lists the exit codes).
source "$(dirname "$0")/lib.sh" "$@"

T() { timeout -k 2 30 "$TCPUNCH" "$@"; }

# ---- usage ----
T --help >"$WORK/help.out" 2>"$WORK/help.err"
check_rc "--help" 0 $?
check "--help prints to stdout" test -s "$WORK/help.out"
check "--help mentions the exit status" grep -q -i "exit" "$WORK/help.out"
for code in 0 1 2 3 4 5 6; do
    check "--help lists exit code $code" grep -q -E "^[[:space:]]*$code[[:space:]]" "$WORK/help.out"
done
for cmd in listen connect chat direct; do
    check "--help lists the $cmd command" grep -q -w "$cmd" "$WORK/help.out"
done
T -h >"$WORK/h.out" 2>/dev/null
check_rc "-h" 0 $?
check "-h prints the same help" cmp -s "$WORK/help.out" "$WORK/h.out"
T -V >"$WORK/v.out" 2>&1
check_rc "-V" 0 $?
check "-V prints a version" grep -q -E "[0-9]+\.[0-9]+\.[0-9]+" "$WORK/v.out"

usage_error() { # DESCRIPTION ARGS...
    local what=$1
    shift
    T "$@" </dev/null >"$WORK/u.out" 2>"$WORK/u.err"
    check_rc "$what (tcpunch $*)" 1 $?
    check "$what: a hint at --help on stderr" grep -q -e "--help" "$WORK/u.err"
    check "$what: nothing on stdout" test ! -s "$WORK/u.out"
}
usage_error "unknown option" --bogus listen
usage_error "unknown short option" -Z listen
usage_error "no command" -s 127.0.0.1:7000
usage_error "unknown command" -s 127.0.0.1:7000 frobnicate
usage_error "connect without a peer" -s 127.0.0.1:7000 -i a connect
usage_error "connect with two peers" -s 127.0.0.1:7000 -i a connect b c
usage_error "listen with an argument" -s 127.0.0.1:7000 -i a listen extra
usage_error "missing option argument" listen -s
usage_error "bad id" -s 127.0.0.1:7000 -i "bad id" listen
usage_error "id of 65 characters" -s 127.0.0.1:7000 -i "$(printf 'x%.0s' $(seq 65))" listen
usage_error "bad port" -s 127.0.0.1:7000 -p 70000 listen
usage_error "non-numeric port" -s 127.0.0.1:7000 -p abc listen
usage_error "bad timeout" -s 127.0.0.1:7000 -t -1 listen
usage_error "server without port" -s 127.0.0.1 listen
usage_error "direct without --port" direct 127.0.0.1:9
usage_error "direct without target" -p 4000 direct

# sessions that survive their connection: every bad value is a usage error naming the range
for bad in "--resume-timeout 3601" "--resume-timeout -1" "--resume-timeout 1.5" \
    "--resume-timeout x" "--resume-timeout ''" "--resume-buffer 63K" "--resume-buffer 65535" \
    "--resume-buffer 2G" "--resume-buffer 1T" "--resume-buffer 8X" "--resume-buffer -1"; do
    eval "set -- $bad"
    usage_error "$bad" -s 127.0.0.1:7000 -i a "$1" "$2" listen
    check "$bad: the error names the range" grep -qE -- \
        "$1: .* (seconds from 0 to 3600|size from 64K to 1G)" "$WORK/u.err"
done
# ... their values in `tcpunch config`: defaults, flags, the config file, a bad file value
export TCPUNCH_HOME=$WORK/rhome
mkdir -p "$TCPUNCH_HOME"
T config >"$WORK/c.out" 2>"$WORK/c.err"
check_rc "config" 0 $?
check "the defaults: resume-timeout 120, resume-buffer 8M" \
    sh -c "grep -qE '^resume-timeout = 120 +# default$' '$WORK/c.out' &&
           grep -qE '^resume-buffer = 8M +# default$' '$WORK/c.out'"
T --resume-timeout 0 --resume-buffer 65536 config >"$WORK/c.out" 2>"$WORK/c.err"
check_rc "config with --resume-timeout 0 --resume-buffer 65536" 0 $?
check "--resume-timeout 0 from the command line" \
    grep -qE '^resume-timeout = 0 +# command line$' "$WORK/c.out"
check "--resume-buffer 65536 shown as 64K" grep -qE '^resume-buffer = 64K +# command line$' \
    "$WORK/c.out"
printf 'resume-timeout = 3600\nresume-buffer = 1G\n' >"$TCPUNCH_HOME/config"
T --resume-buffer 3m config >"$WORK/c.out" 2>"$WORK/c.err"
check_rc "resume-timeout and resume-buffer in the file" 0 $?
check "resume-timeout from the file" grep -qE '^resume-timeout = 3600 +# config file$' \
    "$WORK/c.out"
check "resume-buffer: the flag overrides the file" \
    grep -qE '^resume-buffer = 3M +# command line$' "$WORK/c.out"
printf 'resume-buffer = 2G\n' >"$TCPUNCH_HOME/config"
T config >"$WORK/c.out" 2>"$WORK/c.err"
check_rc "resume-buffer above 1G in the file" 1 $?
check "... names the file, line and range" \
    grep -qF 'config:1: resume-buffer = "2G": not a size from 64K to 1G' "$WORK/c.err"
printf 'resume-timeout = 1.5\n' >"$TCPUNCH_HOME/config"
T config >"$WORK/c.out" 2>"$WORK/c.err"
check_rc "resume-timeout 1.5 in the file" 1 $?
# relay first: --relay-grace MS (0..60000, "auto"), --direct-first; their config keys
rm -f "$TCPUNCH_HOME/config"
for bad in "--relay-grace 60001" "--relay-grace -1" "--relay-grace 1.5" "--relay-grace x"; do
    eval "set -- $bad"
    usage_error "$bad" -s 127.0.0.1:7000 -i a "$1" "$2" listen
    check "$bad: the error names the range" grep -qE -- \
        "$1: .* ms from 0 to 60000" "$WORK/u.err"
done
T config >"$WORK/c.out" 2>"$WORK/c.err"
check "the defaults: relay-grace auto, direct-first false" \
    sh -c "grep -qE '^relay-grace = auto +# default$' '$WORK/c.out' &&
           grep -qE '^direct-first = false +# default$' '$WORK/c.out'"
T --relay-grace 0 --direct-first config >"$WORK/c.out" 2>"$WORK/c.err"
check "--relay-grace 0 --direct-first from the command line" \
    sh -c "grep -qE '^relay-grace = 0 +# command line$' '$WORK/c.out' &&
           grep -qE '^direct-first = true +# command line$' '$WORK/c.out'"
printf 'relay-grace = 300\ndirect-first = true\n' >"$TCPUNCH_HOME/config"
T config >"$WORK/c.out" 2>"$WORK/c.err"
check "relay-grace and direct-first from the file" \
    sh -c "grep -qE '^relay-grace = 300 +# config file$' '$WORK/c.out' &&
           grep -qE '^direct-first = true +# config file$' '$WORK/c.out'"
printf 'relay-grace = soon\n' >"$TCPUNCH_HOME/config"
T config >"$WORK/c.out" 2>"$WORK/c.err"
check_rc "relay-grace soon in the file" 1 $?
check "... names the file, line and range" \
    grep -qF 'config:1: relay-grace = "soon": not auto or a number of ms from 0 to 60000' "$WORK/c.err"
unset TCPUNCH_HOME

# no server given anywhere
env -u TCPUNCH_SERVER timeout -k 2 30 "$TCPUNCH" -i a listen </dev/null >"$WORK/u.out" 2>"$WORK/u.err"
check_rc "listen without -s or TCPUNCH_SERVER" 1 $?
check "names the missing server option" grep -q -i -E "server|-s" "$WORK/u.err"

# the rendezvous server's usage too
timeout -k 2 10 "$RENDEZVOUS" --bogus >"$WORK/r.out" 2>"$WORK/r.err"
check_rc "rendezvous --bogus" 1 $?
timeout -k 2 10 "$RENDEZVOUS" --help >"$WORK/r.out" 2>"$WORK/r.err"
check_rc "rendezvous --help" 0 $?
check "rendezvous --help prints usage" grep -q -e "--listen" "$WORK/r.out"

# ---- server down ----
DEAD=$(free_port)
T -s "127.0.0.1:$DEAD" -i "$(uid nobody)" --no-retry listen </dev/null >"$WORK/d.out" 2>"$WORK/d.err"
check_rc "listen --no-retry, nothing on the server port" 2 $?
check "the message names the server" grep -q -F "127.0.0.1:$DEAD" "$WORK/d.err"
T -s "127.0.0.1:$DEAD" -i "$(uid nobody)" connect somebody </dev/null >"$WORK/d.out" 2>"$WORK/d.err"
check_rc "connect, nothing on the server port" 2 $?
check "nothing on stdout" test ! -s "$WORK/d.out"

# ---- server up ----
start_server

# the rendezvous cannot listen on a port in use: exit 2
timeout -k 2 10 "$RENDEZVOUS" -l "127.0.0.1:$SERVER_PORT" >"$WORK/r.out" 2>"$WORK/r.err"
check_rc "a second rendezvous on the same port" 2 $?

# unknown peer
GHOST=$(uid ghost)
T -s "127.0.0.1:$SERVER_PORT" -i "$(uid asker)" connect "$GHOST" </dev/null >"$WORK/n.out" \
    2>"$WORK/n.err"
check_rc "connect to an unknown peer" 3 $?
check "the message names the peer \"$GHOST\"" grep -q -F -- "$GHOST" "$WORK/n.err"
check "nothing on stdout" test ! -s "$WORK/n.out"

# connect to ourselves: refused by the server (self-connect, non-fatal) -> not a success
SELF=$(uid self)
T -s "127.0.0.1:$SERVER_PORT" -i "$SELF" connect "$SELF" </dev/null >"$WORK/s.out" 2>"$WORK/s.err"
RC=$?
check "connect to our own id fails (exit $RC)" test "$RC" -ne 0
check "and says why" test -s "$WORK/s.err"

# id taken: a listener holds the id, a second listener with the same id and another key is
# refused (with the same key it would take the id over: test_restart.sh)
TAKEN=$(uid taken)
# the listener's stdin is a fifo held open (read-write, so opening it never blocks) on fd 3
mkfifo "$WORK/hold.fifo"
exec 3<>"$WORK/hold.fifo"
spawn 60 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$TAKEN" listen <"$WORK/hold.fifo" \
    >"$WORK/hold.out" 2>"$WORK/hold.err" 3>&-
PID_HOLD=$!
wait_registered "$TAKEN"
TCPUNCH_HOME=$WORK/home/other-$TAKEN T -s "127.0.0.1:$SERVER_PORT" -i "$TAKEN" listen </dev/null \
    >"$WORK/t.out" 2>"$WORK/t.err" 3>&-
check_rc "second listener with the same id, another key" 2 $?
check "the message mentions the id \"$TAKEN\"" grep -q -F -- "$TAKEN" "$WORK/t.err"
check "the first listener is still waiting" kill -0 "$PID_HOLD"

# the first listener is still usable: connect to it (its stdin ends now: nothing to send)
exec 3>&-
printf 'still here' >"$WORK/x.in"
timeout -k 2 30 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$(uid late)" connect "$TAKEN" \
    <"$WORK/x.in" >"$WORK/x.out" 2>"$WORK/x.err"
RC=$?
wait "$PID_HOLD"
RC_HOLD=$?
check_rc "connect to the listener that kept its id" 0 "$RC"
check_rc "that listener" 0 "$RC_HOLD"
same_file "data to the listener" "$WORK/x.in" "$WORK/hold.out"
check "nothing back from the listener" test ! -s "$WORK/x.out"

# the server goes away while a --no-retry listener waits: exit 2 (lost before the punch);
# without --no-retry it waits for the server to come back (test_reconnect.sh)
LOST=$(uid lost)
spawn 60 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$LOST" --no-retry listen </dev/null \
    >"$WORK/l.out" 2>"$WORK/l.err"
PID_L=$!
wait_registered "$LOST"
kill -TERM "$SERVER_PID"
wait "$SERVER_PID"
RC_SERVER=$?
check_rc "rendezvous on SIGTERM" 0 "$RC_SERVER"
wait "$PID_L"
check_rc "listener (--no-retry) whose server went away" 2 $?
finish
