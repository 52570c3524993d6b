#!/bin/bash
# End-to-end encryption and identities: `tcpunch id`, the identity files' modes and the refusal
# of a readable secret key, trust on first use in known_peers, a changed key refused loudly
# (exit 4; the listen side waits on for another peer), --peer-key pinning, a man in the middle
# that flips one byte or cuts the stream (exit 5, the receiver's output a prefix of what was sent, the plaintext never on the wire),
# a relayed session whose every connection to the server is recorded (recorder.py): no
# plaintext in any recorded byte, and direct --plain against socat.
source "$(dirname "$0")/lib.sh" "$@"

# ---- tcpunch id ----
H1=$WORK/home/idtest
TCPUNCH_HOME=$H1 timeout 10 "$TCPUNCH" id >"$WORK/id1.out" 2>"$WORK/id1.err"
check_rc "tcpunch id" 0 $?
check "id: prints the key and the fingerprint" \
    grep -q -E '^fingerprint: SHA256:[A-Za-z0-9+/]{43}$' "$WORK/id1.out"
KEY1=$(sed -n 's/^key: *//p' "$WORK/id1.out")
check "id: the key is 44 characters of base64" test "${#KEY1}" -eq 44
check "id: identity is mode 0600" test "$(stat -c %a "$H1/identity")" = 600
check "id: the directory is mode 0700" test "$(stat -c %a "$H1")" = 700
check "id: identity.pub holds the key" test "$(cat "$H1/identity.pub")" = "$KEY1"
TCPUNCH_HOME=$H1 timeout 10 "$TCPUNCH" id --json >"$WORK/id2.out" 2>&1
check "id --json: the same key, as JSON" python3 -c "
import json, sys
d = json.load(open('$WORK/id2.out'))
sys.exit(d['key'] != '$KEY1' or not d['fingerprint'].startswith('SHA256:'))"
chmod 644 "$H1/identity"
TCPUNCH_HOME=$H1 timeout 10 "$TCPUNCH" id >"$WORK/id3.out" 2>"$WORK/id3.err"
check_rc "id with a world-readable secret key" 6 $?
check "id: the refusal says how to fix it" grep -q "chmod 600" "$WORK/id3.err"
check "id: nothing on stdout after the refusal" test ! -s "$WORK/id3.out"
chmod 600 "$H1/identity"

# ---- trust on first use, then a changed key ----
start_server
head -c 200000 /dev/urandom >"$WORK/a.in"
head -c 100000 /dev/urandom >"$WORK/b.in"
B=$(uid tb)
A=$(uid ta)
run_pair "$B" "$A" "$WORK/a.in" "$WORK/b.in"
check_rc "first contact: connect side" 0 "$RC_A"
check_rc "first contact: listen side" 0 "$RC_B"
same_file "first contact: alice -> bob" "$WORK/a.in" "$WORK/b.out"
KEY_B=$(TCPUNCH_HOME=$WORK/home/$B "$TCPUNCH" id | sed -n 's/^key: *//p')
FP_B=$(TCPUNCH_HOME=$WORK/home/$B "$TCPUNCH" id | sed -n 's/^fingerprint: *//p')
check "first contact: alice printed bob's fingerprint" \
    grep -q -F "new peer $B, key $FP_B, recorded in $WORK/home/$A/known_peers" "$WORK/a.err"
check "first contact: alice's known_peers has bob's key" \
    grep -q -x -F "$B $KEY_B" "$WORK/home/$A/known_peers"
check "known_peers is mode 0600" test "$(stat -c %a "$WORK/home/$A/known_peers")" = 600

# bob gets a new identity: alice must refuse him (a fresh server, which binds an id to the
# first key it sees only while it runs)
mv "$WORK/home/$B" "$WORK/home/$B.old"
kill "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null
start_server
# bob's session fails (alice never answers his shake); a waiting listen then waits on
mark=$(log_mark)
spawn 60 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$B" -t 3 listen <"$WORK/b.in" >"$WORK/b.out" \
    2>"$WORK/b.err"
pid_b=$!
wait_registered "$B" "$mark"
timeout -k 2 60 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$A" -t 3 connect "$B" \
    <"$WORK/a.in" >"$WORK/a.out" 2>"$WORK/a.err"
RC_A=$?
check "changed key: bob's session failed, he waits for the next peer" \
    wait_until 10 grep -q "still waiting" "$WORK/b.err"
check "changed key: bob is still waiting" kill -0 "$pid_b"
kill "$pid_b" 2>/dev/null
wait "$pid_b"
RC_B=$?
check_rc "changed key: connect side refuses" 4 "$RC_A"
check "changed key: the warning names the file and the line to fix" \
    grep -q -E "HAS CHANGED.*known_peers line 2 .*delete line 2 of $WORK/home/$A/known_peers" \
    "$WORK/a.err"
check "changed key: nothing of bob's data on alice's stdout" test ! -s "$WORK/a.out"
check "changed key: bob did not connect either" test "$RC_B" -ne 0
check "changed key: alice's data never reached bob" test ! -s "$WORK/b.out"

# ---- --peer-key: pinning the new key explicitly, a wrong one refused ----
NEWKEY_B=$(TCPUNCH_HOME=$WORK/home/$B "$TCPUNCH" id | sed -n 's/^key: *//p')
NEWFP_B=$(TCPUNCH_HOME=$WORK/home/$B "$TCPUNCH" id | sed -n 's/^fingerprint: *//p')
FP_A=$(TCPUNCH_HOME=$WORK/home/$A "$TCPUNCH" id | sed -n 's/^fingerprint: *//p')
# pinned_pair BOB_FLAGS ALICE_FLAGS [waits]: like run_pair, with flags for one side each (-t 3
# on both); with "waits" bob's session is expected to fail: he must still be waiting for another
# peer once alice is done, and is then stopped (RC_B is his status after SIGTERM)
pinned_pair() {
    local mark pid_b
    mark=$(log_mark)
    # shellcheck disable=SC2086 # the flags are words on purpose
    spawn 30 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$B" -t 3 $1 listen <"$WORK/b.in" \
        >"$WORK/b.out" 2>"$WORK/b.err"
    pid_b=$!
    wait_registered "$B" "$mark"
    # shellcheck disable=SC2086
    timeout -k 2 30 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$A" -t 3 $2 connect "$B" \
        <"$WORK/a.in" >"$WORK/a.out" 2>"$WORK/a.err"
    RC_A=$?
    if [ "${3:-}" = waits ]; then
        BOB_WAITED=no
        wait_until 10 grep -q "still waiting\|refusing a session" "$WORK/b.err" &&
            kill -0 "$pid_b" 2>/dev/null && BOB_WAITED=yes
        kill "$pid_b" 2>/dev/null
    fi
    wait "$pid_b"
    RC_B=$?
}
pinned_pair "" "--peer-key $NEWKEY_B"
check_rc "--peer-key with bob's new key (base64): connect side" 0 "$RC_A"
same_file "--peer-key: alice -> bob" "$WORK/a.in" "$WORK/b.out"
check "--peer-key: the old line stays, with a warning" grep -q "because of --peer-key" "$WORK/a.err"
check "--peer-key: known_peers still has the old line only" \
    test "$(grep -c "^$B " "$WORK/home/$A/known_peers")" -eq 1
# both sides pinned by fingerprint
pinned_pair "--peer-key $FP_A" "--peer-key $NEWFP_B"
check_rc "--peer-key fingerprints on both sides: connect side" 0 "$RC_A"
check_rc "--peer-key fingerprints on both sides: listen side" 0 "$RC_B"
same_file "--peer-key fingerprints: bob -> alice" "$WORK/b.in" "$WORK/a.out"
pinned_pair "" "--peer-key $KEY1" waits
check_rc "--peer-key with someone else's key: refused" 4 "$RC_A"
check "--peer-key mismatch on alice's side: bob waits for the next peer" test "$BOB_WAITED" = yes
check "--peer-key mismatch: says so" grep -q "PEER KEY MISMATCH.*--peer-key" "$WORK/a.err"
check "--peer-key mismatch: nothing on stdout" test ! -s "$WORK/a.out"
pinned_pair "--peer-key $KEY1" "--peer-key $NEWKEY_B" waits
check_rc "listen side pinned to someone else: alice gets no connection" 4 "$RC_A"
check "listen side pinned to someone else: refused, and bob waits for the next peer" \
    test "$BOB_WAITED" = yes
check "listen side pinned to someone else: says so" grep -q "PEER KEY MISMATCH" "$WORK/b.err"
check "listen side pinned to someone else: alice's data never delivered" test ! -s "$WORK/b.out"
timeout 10 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" --peer-key nonsense connect x </dev/null \
    >/dev/null 2>"$WORK/pk.err"
check_rc "--peer-key nonsense: usage error" 1 $?
timeout 10 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" --plain connect x </dev/null \
    >/dev/null 2>"$WORK/pl.err"
check_rc "--plain outside direct: usage error" 1 $?
check "--plain outside direct: says why" grep -q "always encrypted" "$WORK/pl.err"

# ---- a man in the middle between two direct peers ----
# a dials the proxy (PM), the proxy dials b's port (PB); b dials a port nobody has (PX) and wins
# with the proxy's inbound connection. OFFSET lies well after the handshake.
mitm() { # MODE OFFSET TAG
    local PA PB PM PX pid_m pid_b
    PA=$(free_port) PB=$(free_port) PM=$(free_port) PX=$(free_port)
    spawn 40 python3 "$TESTDIR/mitm.py" "$PM" "$PB" "$1" "$2" "$WORK/$3.wire"
    pid_m=$!
    wait_until 5 listening "$PM" || die "mitm.py does not listen"
    # b first: the proxy connects to its punch listener as soon as a reaches the proxy
    spawn 30 "$TCPUNCH" -t 10 direct --port "$PB" "127.0.0.1:$PX" </dev/null \
        >"$WORK/$3-b.out" 2>"$WORK/$3-b.err"
    pid_b=$!
    wait_until 5 listening "$PB" || die "b does not listen on its punch port"
    timeout -k 2 30 "$TCPUNCH" -t 10 direct --port "$PA" "127.0.0.1:$PM" <"$WORK/big.in" \
        >"$WORK/$3-a.out" 2>"$WORK/$3-a.err"
    RC_MA=$?
    wait "$pid_b"
    RC_MB=$?
    wait "$pid_m"
}
prefix_of() { # PART WHOLE
    cmp -s "$1" <(head -c "$(stat -c %s "$1")" "$2")
}
# compressible plaintext with a marker, to look for it on the wire
python3 -c "print(''.join('SECRET-PLAINTEXT-MARKER %06d' % i for i in range(40000)))" \
    >"$WORK/big.in"
mitm pass 0 pass
check_rc "faithful proxy: b" 0 "$RC_MB"
check_rc "faithful proxy: a" 0 "$RC_MA"
same_file "faithful proxy: a -> b" "$WORK/big.in" "$WORK/pass-b.out"
check "the wire carries no plaintext (relay/proxy sees ciphertext only)" \
    sh -c "! grep -q -a SECRET-PLAINTEXT-MARKER '$WORK/pass.wire'"
check "the wire carries the whole stream, sealed" test "$(stat -c %s "$WORK/pass.wire")" -gt 1200001

mitm flip 300000 flip
check_rc "one flipped byte: the receiver" 5 "$RC_MB"
check "one flipped byte: authentication failed" \
    grep -q "authentication failed: data was modified in transit" "$WORK/flip-b.err"
check "one flipped byte: the output is a prefix of the data" prefix_of "$WORK/flip-b.out" "$WORK/big.in"
check "one flipped byte: short of the flipped record" test "$(stat -c %s "$WORK/flip-b.out")" -lt 300000
# the sender handed everything to the network and got b's whole stream: 0, or 5 if b's reset
# came first
check "one flipped byte: the sender exits 0 or 5 (not $RC_MA)" test "$RC_MA" -eq 0 -o "$RC_MA" -eq 5

mitm cut 500000 cut
check_rc "a stream cut with a clean FIN: the receiver" 5 "$RC_MB"
check "a cut stream: connection lost, no final record" \
    grep -q "stream ended without its final record" "$WORK/cut-b.err"
check "a cut stream: the output is a prefix of the data" prefix_of "$WORK/cut-b.out" "$WORK/big.in"

# ---- the relay carries ciphertext only: every byte to and from the server, recorded ----
# recorder.py sits between the peers and the server (they are given its address as --server),
# so it sees every connection to the server: control, relay. The data must cross it sealed.
python3 -c "print(''.join('SECRET-REPLY-MARKER %06d' % i for i in range(20000)))" >"$WORK/reply.in"
PR=$(free_port)
spawn 70 python3 "$TESTDIR/recorder.py" "$PR" "$SERVER_PORT" "$WORK/rec" "$WORK/rec.stop"
pid_r=$!
wait_until 5 listening "$PR" || die "recorder.py does not listen"
B=$(uid rec-b)
A=$(uid rec-a)
mark=$(log_mark)
spawn 40 "$TCPUNCH" -s "127.0.0.1:$PR" -i "$B" --relay-only listen <"$WORK/reply.in" \
    >"$WORK/rec-b.out" 2>"$WORK/rec-b.err"
pid_b=$!
wait_registered "$B" "$mark"
timeout -k 2 40 "$TCPUNCH" -s "127.0.0.1:$PR" -i "$A" connect "$B" <"$WORK/big.in" \
    >"$WORK/rec-a.out" 2>"$WORK/rec-a.err"
check_rc "relayed through the recorder: connect side" 0 $?
wait "$pid_b"
check_rc "relayed through the recorder: listen side" 0 $?
touch "$WORK/rec.stop"
wait "$pid_r"
same_file "relayed through the recorder: a -> b" "$WORK/big.in" "$WORK/rec-b.out"
same_file "relayed through the recorder: b -> a" "$WORK/reply.in" "$WORK/rec-a.out"
check "relayed through the recorder: the path line says relay via the recorder" \
    grep -q "connected to $B: relay via 127.0.0.1:$PR" "$WORK/rec-a.err"
check "relayed through the recorder: the server spliced the session" \
    grep -q "joined, splicing" <(log_since "$mark")
# the recording is complete and readable: the control lines are there in clear, both ways,
# and the relay connection carried at least the whole sealed stream each way
check "the recorder saw the control traffic (hello up, welcome down) in clear" \
    sh -c "grep -q -a -F '\"type\":\"hello\"' '$WORK'/rec/*.up && grep -q -a -F '\"type\":\"welcome\"' '$WORK'/rec/*.down"
RELAY_DOWN=$(grep -l -a -F '"type":"relayed"' "$WORK"/rec/*.down | head -n 2)
check "the recorder saw both relay connections" test "$(echo "$RELAY_DOWN" | grep -c .)" -eq 2
RELAY_BYTES=0
for f in $RELAY_DOWN; do
    RELAY_BYTES=$((RELAY_BYTES + $(stat -c %s "${f%.down}.up") + $(stat -c %s "$f")))
done
check "the relay connections carried both streams ($RELAY_BYTES bytes recorded)" \
    test "$RELAY_BYTES" -gt $((2 * ($(stat -c %s "$WORK/big.in") + $(stat -c %s "$WORK/reply.in"))))
check "no plaintext a -> b in any recorded byte" \
    sh -c "! grep -r -q -a SECRET-PLAINTEXT-MARKER '$WORK/rec'"
check "no plaintext b -> a in any recorded byte" \
    sh -c "! grep -r -q -a SECRET-REPLY-MARKER '$WORK/rec'"

# ---- direct --plain talks to plain TCP programs; encrypted direct refuses them ----
if command -v socat >/dev/null 2>&1; then
    PA=$(free_port) PS=$(free_port)
    spawn 30 socat -u "TCP-LISTEN:$PS,bind=127.0.0.1,reuseaddr" "OPEN:$WORK/socat.out,creat,trunc"
    wait_until 5 listening "$PS" || die "socat does not listen"
    timeout -k 2 30 "$TCPUNCH" --plain direct --port "$PA" "127.0.0.1:$PS" <"$WORK/a.in" \
        >/dev/null 2>"$WORK/plain.err"
    check_rc "direct --plain to socat" 0 $?
    wait_until 5 test "$(stat -c %s "$WORK/socat.out" 2>/dev/null || echo 0)" -eq 200000
    same_file "direct --plain: the bytes as they are" "$WORK/a.in" "$WORK/socat.out"

    PA=$(free_port) PS=$(free_port)
    spawn 30 socat "TCP-LISTEN:$PS,bind=127.0.0.1,reuseaddr" "SYSTEM:sleep 8"
    wait_until 5 listening "$PS" || die "socat does not listen"
    timeout -k 2 30 "$TCPUNCH" direct --port "$PA" "127.0.0.1:$PS" </dev/null >/dev/null \
        2>"$WORK/noplain.err"
    check_rc "encrypted direct against a plain program" 4 $?
    check "encrypted direct against a plain program: says --plain" grep -q -- "--plain" \
        "$WORK/noplain.err"
else
    echo "SKIPPED: the --plain checks need socat"
fi
finish
