#!/bin/bash
# (vii) stdout carries only data: with -v (and -vv) everything else goes to stderr, and the
# -v summary line names the peer.
source "$(dirname "$0")/lib.sh" "$@"

start_server
printf 'line one\nline two\n' >"$WORK/a.in"
head -c 200000 /dev/urandom >"$WORK/b.in"
B=$(uid vb)
A=$(uid va)
run_pair "$B" "$A" "$WORK/a.in" "$WORK/b.in" -v
check_rc "-v connect side" 0 "$RC_A"
check_rc "-v listen side" 0 "$RC_B"
same_file "-v: b's stdout is exactly a's data" "$WORK/a.in" "$WORK/b.out"
same_file "-v: a's stdout is exactly b's data" "$WORK/b.in" "$WORK/a.out"
check "-v: connect side summary on stderr names $B" grep -q "connected to $B" "$WORK/a.err"
check "-v: listen side summary on stderr names $A" grep -q "connected to $A" "$WORK/b.err"

run_pair "$B" "$A" "$WORK/b.in" "$WORK/a.in" -v -v
check_rc "-vv connect side" 0 "$RC_A"
check_rc "-vv listen side" 0 "$RC_B"
same_file "-vv: b's stdout is exactly a's data" "$WORK/b.in" "$WORK/b.out"
same_file "-vv: a's stdout is exactly b's data" "$WORK/a.in" "$WORK/a.out"
check "-vv: stderr has debug detail (more than the summary)" \
    test "$(wc -l <"$WORK/a.err")" -gt 1

run_pair "$B" "$A" "$WORK/a.in" "$WORK/b.in" -q
check_rc "-q connect side" 0 "$RC_A"
check_rc "-q listen side" 0 "$RC_B"
same_file "-q: data a -> b" "$WORK/a.in" "$WORK/b.out"
check "-q: nothing on stderr of a successful run (connect)" test ! -s "$WORK/a.err"
check "-q: nothing on stderr of a successful run (listen)" test ! -s "$WORK/b.err"
finish
