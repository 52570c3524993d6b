#!/usr/bin/env bash
# The admission secret relayed (issue 12, part 2): a man in the middle poses as the server to a
# real peer that has the secret, relays the real server's challenge to it and takes the `admit`
# of its answer. Before the fix, admit was an HMAC of the nonce alone, so the stolen admit
# registered the attacker's own id and key on the private server, or the peer's id with endpoints
# of the attacker's choice. Now the admit covers the whole line (PROTOCOL.md, "Admission"): only
# the peer's own hello, unchanged, gets in with it.
source "$(dirname "$0")/../integration/lib.sh"

command -v python3 >/dev/null || { echo "SKIPPED: python3 is not installed" >&2; exit 77; }

head -c 48 /dev/urandom | base64 >"$WORK/secret"
PROBE=$(free_port) || die "no free port"
start_server --secret-file "$WORK/secret" --probe-listen "127.0.0.1:$PROBE"
MITM=$(free_port) || die "no free port"

spawn 40 python3 "$(dirname "$0")/admit_relay.py" "$MITM" "$SERVER_PORT" "$PROBE" \
    "$WORK/result" >"$WORK/mitm.log" 2>&1
MITM_PID=$!
wait_until 5 listening "$MITM" || die "the man in the middle does not listen"

# the honest peer, pointed at the man in the middle (it believes it is its server); each run
# answers one relayed challenge with its hello, so run it until the MITM has had four (the
# fourth challenge comes from the probe listener: the peer answers it with a hello all the same)
for i in 1 2 3 4; do
    timeout -k 2 15 "$TCPUNCH" -s "127.0.0.1:$MITM" -i alice --secret-file "$WORK/secret" \
        --no-retry listen </dev/null >/dev/null 2>>"$WORK/peer.err"
    kill -0 "$MITM_PID" 2>/dev/null || break
done
wait "$MITM_PID" 2>/dev/null
[ -s "$WORK/result" ] || die "the man in the middle got no answers (see mitm.log)"
cat "$WORK/result" >&2

res() { awk -v w="$1" '$1 == w { print $2 }' "$WORK/result"; }
check "the peer's hello unchanged still gets through (control: the relay works)" \
    [ "$(res unchanged)" = welcome ]
check "the attacker's own hello with the stolen admit is refused (got: $(res own-hello))" \
    [ "$(res own-hello)" = not-admitted ]
check "the peer's hello with endpoints added by the attacker is refused (got: $(res changed-endpoints))" \
    [ "$(res changed-endpoints)" = not-admitted ]
check "the stolen admit on a probe line is refused (got: $(res probe))" \
    [ "$(res probe)" = not-admitted ]
check "the server registered no mallory" bash -c "! grep -q 'register mallory' '$SERVER_LOG'"
finish
