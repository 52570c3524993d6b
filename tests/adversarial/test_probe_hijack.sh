#!/usr/bin/env bash
# The probe hijack (red-team item 8): anyone holding a registered peer's probe_token (it is in
# clear in welcome) could send a probe from anywhere and overwrite the NAT mapping the server
# tells that peer's partners (punch.nat). Now a probe of the control connection's family counts
# only from the control connection's address, at most twice per registration (PROTOCOL.md 5.9).
source "$(dirname "$0")/../integration/lib.sh"

command -v python3 >/dev/null || { echo "SKIPPED: python3 is not installed" >&2; exit 77; }
python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.2", 0))' 2>/dev/null ||
    { echo "SKIPPED: cannot bind 127.0.0.2" >&2; exit 77; }

PROBE=$(free_port) || die "no free port"
start_server --probe-listen "127.0.0.1:$PROBE"
timeout -k 2 30 python3 "$(dirname "$0")/probe_hijack.py" "$SERVER_PORT" "$PROBE" \
    >"$WORK/result" 2>"$WORK/hijack.err" || die "the attacker failed (see hijack.err)"
cat "$WORK/result" >&2
res() { awk -v w="$1" '$1 == w { print $2 }' "$WORK/result"; }
check "the victim's own probe: mapping independent (control: got $(res victim))" \
    [ "$(res victim)" = independent ]
check "the attacker's probe from 127.0.0.2 gets no mapping (got $(res attacker))" \
    [ "$(res attacker)" = none ]
check "the victim's partner is told the victim's real mapping (punch.nat $(res nat))" \
    [ "$(res nat)" = independent ]
check "the server logged the foreign probe" grep -q "another address, nothing recorded" \
    "$SERVER_LOG"
finish
