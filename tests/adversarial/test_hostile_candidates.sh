#!/usr/bin/env bash
# A lying server aims the punch anywhere. fakesrv.py (on 127.0.0.1) welcomes a real `listen`
# with a public endpoint of 169.254.169.254:8080 and then orders a punch whose candidates are
# link-local, unspecified (0.0.0.0 reaches this host's own services), 0/8, multicast, broadcast,
# 240/4 and a local subnet's broadcast address, plus one loopback candidate (allowed: the server
# is on loopback) as the positive control, and a relay_addr on 127.0.0.2 (loopback, but not the
# server's address). The peer must dial none of the bad ones (strace: no connect() to them; a
# listener behind 0.0.0.0:PORT sees nothing), must not join the relay at 127.0.0.2 (a listener
# there sees nothing), and must still dial the loopback candidate. A second listen whose
# relay_addr is the server's own address (another port) must join it there.
# Runs in a network namespace of its own (unshare -n, root), so that whatever the peer dials
# never leaves this host: without root or unshare it is SKIPPED.
source "$(dirname "$0")/ownns.sh" "$@"
source "$(dirname "$0")/../integration/lib.sh" "$@"
ADV=$(cd "$(dirname "$0")" && pwd)
command -v python3 >/dev/null || { echo "SKIPPED: python3 is needed" >&2; exit 77; }
command -v strace >/dev/null || { echo "SKIPPED: strace is needed (scripts/deps)" >&2; exit 77; }
# a subnet whose broadcast address the peer can know: a veth pair inside the namespace (its
# other end is in here too, so no packet can leave)
BCAST=
if ip link add tpv0 type veth peer name tpv1 2>/dev/null &&
    ip addr add 10.99.0.1/24 brd + dev tpv0 && ip link set tpv0 up && ip link set tpv1 up; then
    BCAST=10.99.0.255
else
    echo "note: no veth pair, the subnet broadcast case is left out" >&2
fi

# listener PORT ADDR TAG: counts connections to ADDR:PORT in $WORK/TAG.count, keeps the
# first line each one sends in $WORK/TAG.lines
listener() {
    spawn 40 python3 -c '
import socket, sys, time
port, addr, count, lines = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((addr, port)); s.listen(16); s.settimeout(0.2)
end = time.time() + 35
while time.time() < end:
    try:
        c, a = s.accept()
    except socket.timeout:
        continue
    open(count, "a").write("%s:%d\n" % a)
    c.settimeout(1.0)
    try:
        d = c.recv(4096)
    except OSError:
        d = b""
    open(lines, "ab").write(d.split(b"\n")[0] + b"\n")
    c.close()
' "$1" "$2" "$WORK/$3.count" "$WORK/$3.lines"
    : >"$WORK/$3.count"
    wait_until 5 listening "$1" || die "no listener on $2:$1"
}

LPORT=$(free_port)  # behind the 0.0.0.0 candidate: this host's own "service"
CPORT=$(free_port)  # the loopback candidate (allowed)
RPORT=$(free_port)  # the relay_addr on 127.0.0.2
R2PORT=$(free_port) # the relay_addr on the server's own address
listener "$LPORT" 127.0.0.1 own
listener "$CPORT" 127.0.0.1 cand
listener "$RPORT" 127.0.0.2 relay
listener "$R2PORT" 127.0.0.1 relay2
KEY=$(python3 -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())')
TOKEN=$(python3 -c 'import os; print(os.urandom(16).hex())')
V=$(uid victim)
V2=$(uid victim2)
W=169.254.169.254:8080
BAD=("0.0.0.0:$LPORT" "0.1.2.3:5000" "224.0.0.1:5000" "255.255.255.255:5000" "240.0.0.1:5000"
    "169.254.1.1:5000")
[ -n "$BCAST" ] && BAD+=("$BCAST:5000")
python3 - "$WORK/p1.json" "$WORK/p2.json" "$KEY" "$TOKEN" "$W" "$CPORT" "$RPORT" "$R2PORT" \
    "${BAD[@]}" <<'PY'
import json, sys
p1, p2, key, token, w, cport, rport, r2port = sys.argv[1:9]
bad = sys.argv[9:]
m = {"observed": w, "endpoints": bad + ["127.0.0.1:" + cport], "key": key, "relay": True,
     "token": token, "relay_addr": "127.0.0.2:" + rport}
json.dump(m, open(p1, "w"))
json.dump({"observed": "127.0.0.1:1", "endpoints": [], "key": key, "relay": True,
           "token": token, "direct": False, "relay_addr": "127.0.0.1:" + r2port}, open(p2, "w"))
PY
FPORT=$(free_port)
spawn 40 python3 "$ADV/fakesrv.py" "$FPORT" "$WORK/fake.log" --observed "$V=$W" \
    --punch "$V=$WORK/p1.json" --punch "$V2=$WORK/p2.json" --lifetime 35
wait_until 5 listening "$FPORT" || die "fakesrv.py does not listen"
SRV=127.0.0.1:$FPORT

spawn 30 strace -f -qq -e trace=connect -o "$WORK/strace.log" "$TCPUNCH" -s "$SRV" -i "$V" \
    -t 2 --direct-timeout 0 -v listen </dev/null >"$WORK/v.out" 2>"$WORK/v.err"
pid_v=$!
spawn 30 "$TCPUNCH" -s "$SRV" -i "$V2" -t 2 -v listen </dev/null >"$WORK/v2.out" 2>"$WORK/v2.err"
pid_v2=$!
wait_until 10 grep -qs "punch $V responder" "$WORK/fake.log" || die "no punch order for $V"
wait_until 10 grep -qs "punch $V2 responder" "$WORK/fake.log" || die "no punch order for $V2"
# the punches last -t 2 s: by then every dial that was going to happen has happened
wait_until 10 sh -c "grep -q 'punch to' '$WORK/v.err' && grep -q 'punch to' '$WORK/v2.err'" ||
    sleep 3
kill "$pid_v" "$pid_v2" 2>/dev/null
wait "$pid_v" 2>/dev/null
wait "$pid_v2" 2>/dev/null

check "strace recorded the peer's connect() calls" grep -q 'connect(' "$WORK/strace.log"
for ep in "$W" "${BAD[@]}"; do
    ip=${ep%:*}
    check "no connect() to $ip ($ep)" sh -c "! grep -q -F 'inet_addr(\"$ip\")' '$WORK/strace.log'"
    check "the peer says why $ip was refused (-v)" grep -q "refusing the candidate $ip:" "$WORK/v.err"
done
check "nothing reached this host's service behind 0.0.0.0:$LPORT" test ! -s "$WORK/own.count"
check "the loopback candidate was dialled (the server is on loopback)" test -s "$WORK/cand.count"
check "and got the responder's shake" grep -q '"type":"shake"' "$WORK/cand.lines"
check "no relay connection to 127.0.0.2 (not the server's address)" test ! -s "$WORK/relay.count"
check "no connect() to 127.0.0.2" sh -c "! grep -q -F 'inet_addr(\"127.0.0.2\")' '$WORK/strace.log'"
check "the peer says why the relay address was refused" \
    grep -q "refused the relay address 127.0.0.2:$RPORT" "$WORK/v.err"
check "a relay_addr on the server's own address is joined" test -s "$WORK/relay2.count"
finish
