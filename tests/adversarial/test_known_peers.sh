#!/bin/bash
# known_peers fails closed. A pin line for the peer that cannot be read — a mangled key, a
# NUL byte, an over-long line — used to be skipped, so the peer counted as never seen and
# whatever key the server named was trusted (and recorded). Now the connection is refused like
# a changed key (exit 4) with file:line, and nothing is recorded; a sound file still connects.
source "$(dirname "$0")/../integration/lib.sh" "$@"

start_server
SRV=127.0.0.1:$SERVER_PORT
B=$(uid bob)
A=$(uid alice)
KP=$WORK/home/$A/known_peers

# try_connect: bob listens, alice connects; RC_A, $WORK/a.err. bob is stopped afterwards.
try_connect() {
    local mark pid
    mark=$(log_mark)
    spawn 30 "$TCPUNCH" -s "$SRV" -i "$B" -t 4 listen </dev/null >"$WORK/b.out" 2>"$WORK/b.err"
    pid=$!
    wait_registered "$B" "$mark"
    echo hi | timeout -k 2 20 "$TCPUNCH" -s "$SRV" -i "$A" -t 4 connect "$B" >"$WORK/a.out" \
        2>"$WORK/a.err"
    RC_A=$?
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
}

# the first contact records bob's key in alice's known_peers (trust on first use)
try_connect
check_rc "first contact" 0 "$RC_A"
KEY=$(awk -v b="$B" '$1 == b { print $2 }' "$KP")
[ -n "$KEY" ] || die "bob's key was not recorded in $KP"
GOOD=$(cat "$KP")

# refused CASE: LINE is alice's known_peers; the error must name file:LINENO
refused() {
    local what=$1 lineno=$2 before
    before=$(sha "$KP")
    try_connect
    check_rc "$what: the connection" 4 "$RC_A"
    check "$what: the error names $KP:$lineno" grep -qF "$KP:$lineno:" "$WORK/a.err"
    check "$what: nothing recorded (known_peers unchanged)" test "$(sha "$KP")" = "$before"
}

# a mangled pin for bob (its key cut short), then a valid line for someone else
printf '# pins\n%s %s\nsomeone-else %s\n' "$B" "${KEY:0:30}" "$KEY" >"$KP"
refused "a malformed pin for bob" 2
printf '%s\n' "$B" >"$KP"
refused "bob's name without a key" 1
# a NUL byte inside bob's line
printf '%s\0 %s\n' "$B" "$KEY" >"$KP"
refused "a NUL byte in bob's line" 1
# an over-long line that starts with bob's pin
{ printf '%s %s ' "$B" "$KEY"; head -c 2000 /dev/zero | tr '\0' x; printf '\n'; } >"$KP"
refused "an over-long line" 1
# a line whose name is unreadable (could be bob's), before a valid-looking later line
printf '%s\001 %s\nsomeone-else %s\n' "$B" "${KEY:0:10}" "$KEY" >"$KP"
refused "an unreadable name" 1

# the sound file connects, and another peer's malformed line does not matter to bob
printf '%s\nsomeone-else garbage\n' "$GOOD" >"$KP"
try_connect
check_rc "a sound pin for bob next to another peer's malformed line" 0 "$RC_A"
finish
