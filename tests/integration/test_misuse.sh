#!/bin/bash
# (v) protocol misuse against the server: garbage, overlong lines, unknown types, ... each
# gets an `error` line with the right code, and the server stays up: a normal pair still works.
source "$(dirname "$0")/lib.sh" "$@"

start_server --hello-timeout 2 --keepalive 3
timeout -k 2 90 python3 "$TESTDIR/misuse.py" 127.0.0.1 "$SERVER_PORT" 2 3
check_rc "protocol misuse checks (misuse.py)" 0 $?
check "the server is still running" server_alive
check "the server is still listening" listening "$SERVER_PORT"

printf 'after the abuse\0' >"$WORK/a.in"
head -c 65536 /dev/urandom >"$WORK/b.in"
run_pair "$(uid after-b)" "$(uid after-a)" "$WORK/a.in" "$WORK/b.in"
check_rc "a normal pair afterwards, connect side" 0 "$RC_A"
check_rc "a normal pair afterwards, listen side" 0 "$RC_B"
same_file "a -> b" "$WORK/a.in" "$WORK/b.out"
same_file "b -> a" "$WORK/b.in" "$WORK/a.out"
finish
