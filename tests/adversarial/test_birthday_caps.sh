#!/usr/bin/env bash
# hello.birthday from a hostile peer (Phase 9, PROTOCOL.md "Birthday punching"): a hello whose
# birthday is out of range or malformed is refused with bad-field (fatal), like any strict
# member; the admit covers it, so a party on the path can neither add, change nor strip it on a
# server with a secret; a server started with --birthday-k-max 0 (or --birthday-m-max 0) does not
# offer the feature in its challenge; out-of-range flags are usage errors (exit 1). Two peers on loopback
# (no probe: mapping unknown) get the ordinary punch: the birthday decision is test_plan.c's.
source "$(dirname "$0")/../integration/lib.sh"

command -v python3 >/dev/null || { echo "SKIPPED: python3 is not installed" >&2; exit 77; }

head -c 48 /dev/urandom | base64 >"$WORK/secret"
start_server
ON_PORT=$SERVER_PORT
start_server --secret-file "$WORK/secret"
SEC_PORT=$SERVER_PORT
start_server --birthday-k-max 0
OFF_PORT=$SERVER_PORT

timeout -k 2 60 python3 "$(dirname "$0")/birthday_caps.py" "$ON_PORT" "$SEC_PORT" "$WORK/secret" \
    "$OFF_PORT" \
    >"$WORK/result" 2>"$WORK/caps.err" || die "the hostile peer failed (see caps.err)"
cat "$WORK/result" >&2
res() { awk -v w="$1" '$1 == w { print $2 }' "$WORK/result"; }

# (and resume, section 18, and report, section 19, which --birthday-k-max leaves as they are)
check "the default server offers birthday in its challenge (got $(res features-on))" \
    [ "$(res features-on)" = birthday,resume,report,replace,code ]
check "--birthday-k-max 0: no birthday in the challenge (got $(res features-off))" \
    [ "$(res features-off)" = resume,report,replace,code ]
for w in k-513 k-neg m-4097 m-neg no-m extra k-text raw0 raw1 raw2; do
    check "hello.birthday $w is refused with bad-field (got $(res bad-$w))" \
        [ "$(res bad-$w)" = bad-field ]
done
check "k 0, m 0 registers (got $(res edge-0-0))" [ "$(res edge-0-0)" = welcome ]
check "k 512, m 4096 registers (got $(res edge-512-4096))" [ "$(res edge-512-4096)" = welcome ]
check "with a secret too (got $(res features-secret))" [ "$(res features-secret)" = birthday,resume,report,replace,code ]
check "a hello with birthday and its own admit registers (got $(res admit-own))" \
    [ "$(res admit-own)" = welcome ]
check "birthday added to a hello after its admit: not-admitted (got $(res admit-added))" \
    [ "$(res admit-added)" = not-admitted ]
check "birthday changed after the admit: not-admitted (got $(res admit-changed))" \
    [ "$(res admit-changed)" = not-admitted ]
check "birthday stripped after the admit: not-admitted (got $(res admit-stripped))" \
    [ "$(res admit-stripped)" = not-admitted ]
check "two loopback peers with birthday register (got $(res pair-registered))" \
    [ "$(res pair-registered)" = welcome/welcome ]
check "... and get the ordinary punch, no plan (got $(res pair-punch))" \
    [ "$(res pair-punch)" = ordinary ]
check "... direct as before (got $(res pair-direct))" [ "$(res pair-direct)" = yes ]
check "no birthday plan was logged" bash -c "! grep -q 'birthday:' '$SERVER_LOG'"
check "a server that never plans birthday still takes the member (got $(res off-accepts))" \
    [ "$(res off-accepts)" = welcome ]
check "... and refuses it out of range (got $(res off-bad))" [ "$(res off-bad)" = bad-field ]

# the flags: 0 for m as well, and the ranges
start_server --birthday-m-max 0
out=$(timeout 5 python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
print(s.makefile().readline().strip())' "$SERVER_PORT")
check "--birthday-m-max 0: no birthday either ($out)" bash -c "! grep -q birthday <<<'$out'"
for bad in "--birthday-k-max 513" "--birthday-m-max 4097" "--birthday-k-max -1" \
    "--birthday-m-max x"; do
    timeout 5 "$RENDEZVOUS" $bad -l "127.0.0.1:$(free_port)" >/dev/null 2>"$WORK/flag.err"
    rc=$?
    check "$bad is a usage error (exit $rc: $(head -n 1 "$WORK/flag.err"))" \
        bash -c "[ $rc = 1 ] && grep -q -- '${bad%% *} must be' '$WORK/flag.err'"
done
finish
