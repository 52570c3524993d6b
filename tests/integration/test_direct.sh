#!/bin/bash
# (iii) direct mode, no server: two peers each bind their port and connect to the other's,
# crossed; data both ways.
source "$(dirname "$0")/lib.sh" "$@"

PA=$(free_port)
PB=$(free_port)
while [ "$PB" = "$PA" ]; do PB=$(free_port); done
head -c 524288 /dev/urandom >"$WORK/a.in"
printf 'from b\0 no newline' >"$WORK/b.in"

spawn 30 "$TCPUNCH" -v direct --port "$PA" "127.0.0.1:$PB" <"$WORK/a.in" >"$WORK/a.out" \
    2>"$WORK/a.err"
PID_A=$!
sleep 0.3 # a is already retrying when b starts
timeout -k 2 30 "$TCPUNCH" -v direct --port "$PB" "127.0.0.1:$PA" <"$WORK/b.in" \
    >"$WORK/b.out" 2>"$WORK/b.err"
RC_B=$?
wait "$PID_A"
RC_A=$?
check_rc "direct a" 0 "$RC_A"
check_rc "direct b" 0 "$RC_B"
same_file "a -> b" "$WORK/a.in" "$WORK/b.out"
same_file "b -> a" "$WORK/b.in" "$WORK/a.out"

# both started together, options before the command this time
PA=$(free_port)
PB=$(free_port)
while [ "$PB" = "$PA" ]; do PB=$(free_port); done
spawn 30 "$TCPUNCH" -p "$PA" direct "127.0.0.1:$PB" <"$WORK/b.in" >"$WORK/a.out" 2>"$WORK/a.err"
PID_A=$!
spawn 30 "$TCPUNCH" -p "$PB" direct "127.0.0.1:$PA" <"$WORK/a.in" >"$WORK/b.out" 2>"$WORK/b.err"
PID_B=$!
wait "$PID_A"
RC_A=$?
wait "$PID_B"
RC_B=$?
check_rc "simultaneous start a" 0 "$RC_A"
check_rc "simultaneous start b" 0 "$RC_B"
same_file "simultaneous a -> b" "$WORK/b.in" "$WORK/b.out"
same_file "simultaneous b -> a" "$WORK/a.in" "$WORK/a.out"

# nobody on the other side: punch failed (4) after --timeout
PA=$(free_port)
PB=$(free_port)
start=$(date +%s)
timeout -k 2 20 "$TCPUNCH" -t 2 direct --port "$PA" "127.0.0.1:$PB" </dev/null \
    >"$WORK/c.out" 2>"$WORK/c.err"
RC=$?
elapsed=$(($(date +%s) - start))
check_rc "direct with nobody there" 4 "$RC"
check "gave up after about --timeout 2 s (took ${elapsed}s)" test "$elapsed" -ge 1 -a "$elapsed" -le 6
check "nothing on stdout" test ! -s "$WORK/c.out"
check "an error message on stderr" test -s "$WORK/c.err"
finish
