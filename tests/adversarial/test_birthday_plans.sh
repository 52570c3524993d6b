#!/usr/bin/env bash
# A lying server plans birthday punches (PROTOCOL.md, "Birthday punching"; design section 7,
# "What a peer refuses"). fakesrv.py offers "birthday", answers each peer's probe with the
# mapping the test chooses, and orders punches whose `birthday` a real `listen` must refuse or
# take within its own limits:
#   third  (dependent) a hard plan aimed at a third party (127.0.0.9): refused, nothing reaches
#          it, the ordinary candidate is dialled instead;
#   role   (dependent) told to be easy: refused (only the role our probe measured);
#   unk    (no mapping from the probe) told to be hard: refused;
#   hard   (dependent, --birthday-k 3) a hard plan of k 8 at the observed endpoint: exactly 3
#          sockets dial it (capped, the IPv4 candidates left out), and with no winner and no
#          relay the punch fails after the window, saying what the birthday came to;
#   two    (dependent) two hard plans in a row: the second is refused while the first runs;
#   easy   (independent, -p PORT) an easy plan of m 4 over one port: one guess, from the
#          shared port.
# Runs in a network namespace of its own (unshare -n, root): whatever the peers dial never
# leaves this host; without root or unshare it is SKIPPED.
source "$(dirname "$0")/ownns.sh" "$@"
source "$(dirname "$0")/../integration/lib.sh" "$@"
# birthday targets on loopback are refused unless this test-only switch is set (tcpunch(1))
export TCPUNCH_TEST_BIRTHDAY_LOOPBACK=1
ADV=$(cd "$(dirname "$0")" && pwd)
command -v python3 >/dev/null || { echo "SKIPPED: python3 is needed" >&2; exit 77; }

# listener PORT ADDR TAG: counts connections to ADDR:PORT in $WORK/TAG.count (one line each,
# the source endpoint), keeps the first line each one sends in $WORK/TAG.lines
listener() {
    spawn 40 python3 -c '
import socket, sys, time
port, addr, count, lines = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((addr, port)); s.listen(64); s.settimeout(0.2)
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
count() { wc -l <"$WORK/$1.count"; }

KEY=$(python3 -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())')
T_PORT=$(free_port)
listener "$T_PORT" 127.0.0.9 third_party
declare -A PORT
for c in third role unk hard two two2 easy; do
    PORT[$c]=$(free_port)
    listener "${PORT[$c]}" 127.0.0.1 "$c"
done
EASY_LOCAL=$(free_port)

# plan FILE OBSERVED_PORT ROLE TARGET K M [PORT_LO PORT_HI]: a punch with a birthday plan
plan() {
    python3 - "$@" "$KEY" <<'PY'
import json, sys
f, oport, role, target, k, m = sys.argv[1:7]
lo, hi = (sys.argv[7], sys.argv[8]) if len(sys.argv) > 9 else ("1024", "65535")
key = sys.argv[-1]
json.dump({"observed": "127.0.0.1:" + oport, "endpoints": [], "key": key,
           "birthday": {"role": role, "target": target, "k": int(k), "m": int(m), "ttl": 2,
                        "pace_ms": 100, "ports": [int(lo), int(hi)], "easy_delay_us": 0}},
          open(f, "w"))
PY
}
plan "$WORK/third.json" "${PORT[third]}" hard "127.0.0.9:$T_PORT" 8 64
plan "$WORK/role.json" "${PORT[role]}" easy "127.0.0.1:1" 8 64 "${PORT[role]}" "${PORT[role]}"
plan "$WORK/unk.json" "${PORT[unk]}" hard "127.0.0.1:${PORT[unk]}" 8 64
plan "$WORK/hard.json" "${PORT[hard]}" hard "127.0.0.1:${PORT[hard]}" 8 64
plan "$WORK/two1.json" "${PORT[two]}" hard "127.0.0.1:${PORT[two]}" 2 64
plan "$WORK/two2.json" "${PORT[two2]}" hard "127.0.0.1:${PORT[two2]}" 2 64
plan "$WORK/easy.json" "${PORT[easy]}" easy "127.0.0.1:1" 8 4 "${PORT[easy]}" "${PORT[easy]}"

declare -A ID
for c in third role unk hard two easy; do ID[$c]=$(uid "bd-$c"); done
FPORT=$(free_port)
PPORT=$(free_port)
# the probe must be answered before the punch comes (it decides the verdict): 1 s after welcome
spawn 40 python3 "$ADV/fakesrv.py" "$FPORT" "$WORK/fake.log" --features birthday \
    --probe-port "$PPORT" --punch-delay 1.0 --punch-gap 0.05 --lifetime 35 \
    --mapping "${ID[third]}=dependent" --mapping "${ID[role]}=dependent" \
    --mapping "${ID[hard]}=dependent" --mapping "${ID[two]}=dependent" \
    --mapping "${ID[easy]}=independent" \
    --punch "${ID[third]}=$WORK/third.json" --punch "${ID[role]}=$WORK/role.json" \
    --punch "${ID[unk]}=$WORK/unk.json" --punch "${ID[hard]}=$WORK/hard.json" \
    --punch "${ID[two]}=$WORK/two1.json" --punch "${ID[two]}=$WORK/two2.json" \
    --punch "${ID[easy]}=$WORK/easy.json"
wait_until 5 listening "$FPORT" || die "fakesrv.py does not listen"
wait_until 5 listening "$PPORT" || die "fakesrv.py's probe port does not listen"
SRV=127.0.0.1:$FPORT

declare -A PID
for c in third role unk hard two easy; do
    extra=()
    [ "$c" = hard ] && extra=(--birthday-k 3)
    [ "$c" = easy ] && extra=(-p "$EASY_LOCAL")
    spawn 30 "$TCPUNCH" -s "$SRV" -i "${ID[$c]}" -t 3 -v "${extra[@]}" listen \
        </dev/null >"$WORK/$c.out" 2>"$WORK/$c.err"
    PID[$c]=$!
done
for c in third role unk hard two easy; do
    wait_until 10 grep -qs "punch ${ID[$c]} responder" "$WORK/fake.log" ||
        die "no punch order for ${ID[$c]}"
done
# every punch lasts -t 3 s at most; the birthday windows are pace (0.1 s) + 1.5 s
wait_until 10 sh -c "for c in third role unk hard two; do grep -q 'punch to mallory' \"$WORK/\$c.err\" || exit 1; done" ||
    sleep 2
sleep 0.5
for c in "${!PID[@]}"; do kill "${PID[$c]}" 2>/dev/null; done
for c in "${!PID[@]}"; do wait "${PID[$c]}" 2>/dev/null; done

check "the probes were answered" grep -q "probe ${ID[hard]} dependent" "$WORK/fake.log"
check "the listen announced birthday punching to a server that offered it (k 3 = its --birthday-k)" \
    grep -q "hello ${ID[hard]} main .* birthday=3/1024" "$WORK/fake.log"

# third: a plan aimed at a third party
check "third: the plan aimed at 127.0.0.9 is refused" \
    grep -q "refusing the birthday punch with mallory: its target 127.0.0.9:$T_PORT is not the peer's observed address 127.0.0.1" "$WORK/third.err"
check "third: nothing reached the third party" test "$(count third_party)" -eq 0
check "third: the ordinary candidate was dialled instead" test "$(count third)" -ge 1

# role: told easy, measured dependent
check "role: told easy while our probe saw a new mapping per destination: refused" \
    grep -q "refusing the birthday punch with mallory: it makes us easy" "$WORK/role.err"

# unk: no verdict
check "unk: no verdict of our own: refused" \
    grep -q "refusing the birthday punch with mallory: it makes us hard, but our probe did not measure" "$WORK/unk.err"

# hard: taken, capped to --birthday-k 3, nothing else dialled there
check "hard: the plan is taken" grep -q "we are the hard side, 3 sockets towards 127.0.0.1:${PORT[hard]}" "$WORK/hard.err"
n=$(count hard)
check "hard: exactly 3 connections to the target (k 8 capped to 3; IPv4 candidates left out): $n" test "$n" -eq 3
check "hard: each got our handshake" test "$(grep -c '"type":"shake"' "$WORK/hard.lines")" -eq 3
check "hard: without a winner and a relay the punch fails, saying what the birthday came to" \
    grep -q "punch to mallory failed: direct: birthday: 3 sockets sent, 3 connected; 3 connections but no handshake" "$WORK/hard.err"

# two: one at a time
check "two: the second plan is refused while the first runs" \
    grep -q "refusing the birthday punch with mallory: another birthday punch of ours is running" "$WORK/two.err"
check "two: the first plan's 2 sockets dialled its target: $(count two)" test "$(count two)" -eq 2
check "two: the second punch dialled its ordinary candidate" test "$(count two2)" -ge 1

# easy: one guess (m 4 over a range of one port), from the shared port
check "easy: the plan is taken" grep -q "we are the easy side, 4 guesses at ports ${PORT[easy]}-${PORT[easy]} of 127.0.0.1" "$WORK/easy.err"
check "easy: exactly one guess reached the one port of the range: $(count easy)" test "$(count easy)" -eq 1
check "easy: from the shared port $EASY_LOCAL" grep -q ":$EASY_LOCAL\$" "$WORK/easy.count"
finish
