#!/bin/bash
# (vi) binary safety: NUL bytes, no trailing newline, CR/LF, every byte value; an empty input.
source "$(dirname "$0")/lib.sh" "$@"

start_server
printf 'a\0b\0\0c\r\nd\0' >"$WORK/a.in"
# every byte value, then 100 KB of NULs, then a last byte that is not a newline
python3 -c 'import sys; sys.stdout.buffer.write(bytes(range(256)) * 64 + b"\0" * 100000 + b"\xff")' \
    >"$WORK/b.in"
B=$(uid bin-b)
A=$(uid bin-a)
run_pair "$B" "$A" "$WORK/a.in" "$WORK/b.in"
check_rc "connect side" 0 "$RC_A"
check_rc "listen side" 0 "$RC_B"
same_file "NULs without trailing newline a -> b" "$WORK/a.in" "$WORK/b.out"
same_file "all byte values b -> a" "$WORK/b.in" "$WORK/a.out"

# one side sends nothing at all; ids and server from the environment this time
: >"$WORK/empty.in"
B2=$(uid env-b)
A2=$(uid env-a)
export TCPUNCH_SERVER="127.0.0.1:$SERVER_PORT"
spawn 60 env TCPUNCH_ID="$B2" "$TCPUNCH" listen <"$WORK/empty.in" >"$WORK/b.out" 2>"$WORK/b.err"
pid_b=$!
wait_registered "$B2"
TCPUNCH_ID="$A2" timeout -k 2 60 "$TCPUNCH" connect "$B2" <"$WORK/a.in" >"$WORK/a.out" \
    2>"$WORK/a.err"
RC_A=$?
wait "$pid_b"
RC_B=$?
unset TCPUNCH_SERVER
check_rc "env TCPUNCH_SERVER/TCPUNCH_ID, connect side" 0 "$RC_A"
check_rc "env TCPUNCH_SERVER/TCPUNCH_ID, listen side" 0 "$RC_B"
same_file "a -> b with an empty reverse direction" "$WORK/a.in" "$WORK/b.out"
check "empty input gives empty output" test ! -s "$WORK/a.out"
finish
