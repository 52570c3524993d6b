#!/bin/bash
# (ii) chat: two peers exchange lines with spaces, each prints "PEER: text" for what it
# receives, /quit ends the chat cleanly and both exit 0.
source "$(dirname "$0")/lib.sh" "$@"

start_server
B=$(uid chat-bob)
A=$(uid chat-alice)
mkfifo "$WORK/a.fifo" "$WORK/b.fifo"

# bob waits for anyone, alice asks for bob
# stdin of each is a fifo held open read-write (so opening never blocks) on fds 3..6
exec 3<>"$WORK/a.fifo" 4<>"$WORK/b.fifo"
spawn 60 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$B" -v chat <"$WORK/b.fifo" \
    >"$WORK/b.out" 2>"$WORK/b.err" 3>&- 4>&-
PID_B=$!
wait_registered "$B"
spawn 60 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$A" -v chat "$B" <"$WORK/a.fifo" \
    >"$WORK/a.out" 2>"$WORK/a.err" 3>&- 4>&-
PID_A=$!

wait_until 15 grep -q "connected to $B" "$WORK/a.err" ||
    die "alice never reported being connected to $B (-v summary line)"
wait_until 15 grep -q "connected to $A" "$WORK/b.err" ||
    die "bob never reported being connected to $A (-v summary line)"
pass "both chat peers connected"

echo "hello bob,  two  spaces and a tab	here" >&3
wait_until 10 grep -q -F -x "$A: hello bob,  two  spaces and a tab	here" "$WORK/b.out"
check_rc "bob sees \"$A: hello bob, ...\"" 0 $?

echo "hi alice, bob here" >&4
echo "second line from bob" >&4
wait_until 10 grep -q -F -x "$B: second line from bob" "$WORK/a.out"
check_rc "alice sees \"$B: second line from bob\"" 0 $?
check "alice sees \"$B: hi alice, bob here\"" grep -q -F -x "$B: hi alice, bob here" "$WORK/a.out"
check "bob's lines arrive in order" \
    test "$(head -2 "$WORK/a.out")" = "$(printf '%s\n%s' "$B: hi alice, bob here" "$B: second line from bob")"

echo "/quit" >&3
wait "$PID_A"
RC_A=$?
exec 3>&-
wait "$PID_B"
RC_B=$?
exec 4>&-
check_rc "alice after /quit" 0 "$RC_A"
check_rc "bob after alice left" 0 "$RC_B"
check "/quit is a command, not sent as text" sh -c "! grep -q quit '$WORK/b.out'"
check "alice's stdout has only \"$B: \" lines" sh -c "! grep -v -q '^$B: ' '$WORK/a.out'"
check "bob's stdout has only \"$A: \" lines" sh -c "! grep -v -q '^$A: ' '$WORK/b.out'"
check "no prompt on stderr when stdin is not a terminal" sh -c "! grep -q '^> ' '$WORK/a.err'"

# chat ends on EOF as well
mkfifo "$WORK/c.fifo" "$WORK/d.fifo"
C=$(uid chat-carol)
D=$(uid chat-dave)
exec 5<>"$WORK/c.fifo" 6<>"$WORK/d.fifo"
spawn 60 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$D" -v chat <"$WORK/d.fifo" \
    >"$WORK/d.out" 2>"$WORK/d.err" 5>&- 6>&-
PID_D=$!
wait_registered "$D"
spawn 60 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$C" -v chat "$D" <"$WORK/c.fifo" \
    >"$WORK/c.out" 2>"$WORK/c.err" 5>&- 6>&-
PID_C=$!
wait_until 15 grep -q "connected to" "$WORK/c.err" || die "carol never connected"
echo "last words" >&5
wait_until 10 grep -q -F -x "$C: last words" "$WORK/d.out"
check_rc "dave sees carol's line" 0 $?
exec 5>&- # EOF on carol's stdin
wait "$PID_C"
RC_C=$?
wait "$PID_D"
RC_D=$?
exec 6>&-
check_rc "carol after EOF on stdin" 0 "$RC_C"
check_rc "dave after carol left" 0 "$RC_D"
finish
