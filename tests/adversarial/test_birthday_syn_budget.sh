#!/usr/bin/env bash
# A birthday plan's SYN budget (PROTOCOL.md 17, "Budget"): at most K + K + M SYNs, K + K from
# the hard side (each socket's first SYN and exactly one retransmission), M from the easy side
# (one per guess). The hard sockets used to count on the classic exponential SYN backoff (1 s,
# then 3 s); Linux 6.7+ has net.ipv4.tcp_syn_linear_timeouts (default 4), which retransmits
# every 1 s: a socket alive t0 + pace_ms + 1.5 s sent 3 SYNs (pace 800) or 4 (pace 2000), the
# late ones with the normal TTL (they draw the easy NAT's RST). Now every hard socket has
# TCP_SYNCNT 1, whatever the kernel's backoff.
# Here, with the default caps (k 256, m 1024) and the worst pace a plan may carry (2000 ms):
#   hard  a plan of k 256 at a port whose SYNs are counted and dropped (nft): at most 512 SYNs,
#         at least 256;
#   easy  a plan of m 1024 over 1024 ports, counted and dropped: exactly 1024 SYNs.
# So the documented worst case per plan, 256 x 2 + 1024 = 1536, holds. SYNS_ONLY=1 prints the
# counts. Runs in a network namespace of its own (unshare -n, root; nft): SKIPPED without.
NEED=nft
source "$(dirname "$0")/ownns.sh" "$@"
source "$(dirname "$0")/../integration/lib.sh" "$@"
# birthday targets on loopback are refused unless this test-only switch is set (tcpunch(1))
export TCPUNCH_TEST_BIRTHDAY_LOOPBACK=1
ADV=$(cd "$(dirname "$0")" && pwd)
command -v python3 >/dev/null || { echo "SKIPPED: python3 is needed" >&2; exit 77; }

K=256
M=1024
DPORT=$(free_port)
LPORT=$(free_port)
FPORT=$(free_port)
PPORT=$(free_port)
# the easy side's guess range must hold none of the ports the peers talk to: the nft rule below
# drops LPORT's SYNs into it, and free_port draws from 20000-60000 (a server on 40647 once fell
# in a fixed 40000-41023 and the easy peer could not register)
GLO=""
for lo in 21000 25000 29000 33000 37000 41000 45000 49000 53000 57000; do
    clash=0
    for p in "$DPORT" "$LPORT" "$FPORT" "$PPORT"; do
        [ "$p" -ge "$lo" ] && [ "$p" -le $((lo + M - 1)) ] && clash=1
    done
    [ "$clash" = 0 ] && { GLO=$lo; break; }
done
[ -n "$GLO" ] || die "no guess range free of the test's ports"
GHI=$((GLO + M - 1))
nft -f - <<NFT || { echo "SKIPPED: nft cannot add a table" >&2; exit 77; }
table inet tpbudget {
    chain cin {
        type filter hook input priority 0;
        tcp dport $DPORT tcp flags & (syn | ack) == syn counter drop
        tcp sport $LPORT tcp dport $GLO-$GHI tcp flags & (syn | ack) == syn counter drop
    }
}
NFT
counters() { nft list table inet tpbudget | sed -n 's/.*counter packets \([0-9]*\).*/\1/p'; }
KEY=$(python3 -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())')
python3 - "$WORK" "$DPORT" "$KEY" "$K" "$M" "$GLO" "$GHI" <<'PY'
import json, sys
w, port, key, k, m, lo, hi = sys.argv[1:8]
json.dump({"observed": "127.0.0.1:" + port, "endpoints": [], "key": key,
           "birthday": {"role": "hard", "target": "127.0.0.1:" + port, "k": int(k), "m": int(m),
                        "ttl": 16, "pace_ms": 2000, "ports": [1024, 65535],
                        "easy_delay_us": 0}}, open(w + "/hard.json", "w"))
json.dump({"observed": "127.0.0.1:" + lo, "endpoints": [], "key": key,
           "birthday": {"role": "easy", "target": "127.0.0.1:1", "k": int(k), "m": int(m),
                        "ttl": 0, "pace_ms": 800, "ports": [int(lo), int(hi)],
                        "easy_delay_us": 0}}, open(w + "/easy.json", "w"))
PY
HID=$(uid bd-hard)
EID=$(uid bd-easy)
spawn 60 python3 "$ADV/fakesrv.py" "$FPORT" "$WORK/fake.log" --features birthday \
    --probe-port "$PPORT" --punch-delay 1.0 --lifetime 50 \
    --mapping "$HID=dependent" --mapping "$EID=independent" \
    --punch "$HID=$WORK/hard.json" --punch "$EID=$WORK/easy.json"
wait_until 5 listening "$FPORT" || die "fakesrv.py does not listen"
wait_until 5 listening "$PPORT" || die "no probe port"

# hard: pace 2000 keeps the sockets to t0 + 3.5 s, past the kernel's 1 s, 2 s, 3 s (linear)
spawn 40 "$TCPUNCH" -s "127.0.0.1:$FPORT" -i "$HID" -t 8 -v listen </dev/null \
    >"$WORK/hard.out" 2>"$WORK/hard.err"
HARD=$!
spawn 40 "$TCPUNCH" -s "127.0.0.1:$FPORT" -i "$EID" -p "$LPORT" -t 8 -v listen </dev/null \
    >"$WORK/easy.out" 2>"$WORK/easy.err"
EASY=$!
took() { grep -qs "we are the hard side" "$WORK/hard.err" && grep -qs "we are the easy side" "$WORK/easy.err"; }
wait_until 25 took || { cat "$WORK/hard.err" "$WORK/easy.err" >&2; die "the plans were not taken"; }
sleep 6
kill "$HARD" "$EASY" 2>/dev/null
wait "$HARD" "$EASY" 2>/dev/null
read -r hsyn esyn < <(counters | tr '\n' ' ')
linear=$(sysctl -n net.ipv4.tcp_syn_linear_timeouts 2>/dev/null || echo absent)
echo "SYNs: hard $hsyn (k $K), easy $esyn (m $M), total $((hsyn + esyn)) (budget $((2 * K + M)); tcp_syn_linear_timeouts $linear)" >&2
[ -n "${SYNS_ONLY:-}" ] && exit 0
check "the hard plan of k $K, pace 2000 ms, sent every socket's first SYN (sent: $hsyn)" \
    test "$hsyn" -ge "$K"
check "the hard plan of k $K, pace 2000 ms, sent at most 2k = $((2 * K)) SYNs (sent: $hsyn)" \
    test "$hsyn" -le $((2 * K))
check "the easy plan of m $M sent exactly m SYNs (sent: $esyn)" test "$esyn" -eq "$M"
check "the plan's SYNs stay within K + K + M = $((2 * K + M)) (sent: $((hsyn + esyn)))" \
    test $((hsyn + esyn)) -le $((2 * K + M))
finish
