#!/bin/bash
# (i) rendezvous + listen + connect on loopback: 1 MiB of random data each way, byte-identical,
# both peers exit 0.
source "$(dirname "$0")/lib.sh" "$@"

start_server
head -c 1048576 /dev/urandom >"$WORK/a.in"
head -c 1048576 /dev/urandom >"$WORK/b.in"
B=$(uid bob)
A=$(uid alice)

run_pair "$B" "$A" "$WORK/a.in" "$WORK/b.in"
check_rc "connect side" 0 "$RC_A"
check_rc "listen side" 0 "$RC_B"
same_file "alice -> bob" "$WORK/a.in" "$WORK/b.out"
same_file "bob -> alice" "$WORK/b.in" "$WORK/a.out"
check "the server is still running" server_alive
check "the server logged the register of $B" grep -q -F -- "$B" "$SERVER_LOG"
check "the server logged the register of $A" grep -q -F -- "$A" "$SERVER_LOG"

# the same again on the same server, the ids free again: the registry let the first pair go
run_pair "$B" "$A" "$WORK/b.in" "$WORK/a.in"
check_rc "second pair, connect side" 0 "$RC_A"
check_rc "second pair, listen side" 0 "$RC_B"
same_file "second pair alice -> bob" "$WORK/b.in" "$WORK/b.out"
same_file "second pair bob -> alice" "$WORK/a.in" "$WORK/a.out"
finish
