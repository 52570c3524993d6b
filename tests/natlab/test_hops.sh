#!/usr/bin/env bash
# test_hops.sh HOPS_PROBE: the TTL discovery (peer/hops.c) in the NAT lab's own topologies,
# built by lab.sh's scenario functions (sourced, LAB_SOURCED=1), run from alice's host towards
# the rendezvous host 203.0.113.1:
#   o (hard-drop): alice's NAT at hop 1 (192.168.1.1), the wan router at hop 2: TTL 2
#   q (hard-cgnat): home NAT (192.168.1.1), carrier NAT (100.64.0.1), wan router: TTL 3
#   o with the answers slowed (~65 ms each, a token bucket on ra's LAN port): they arrive after
#     hops_start returned, through the poll (EPOLLERR), and the scan still ends early: TTL 2
#   q with a carrier NAT that sends no time exceeded: TTL 2 silent, so the scan waits for its
#     deadline (300 ms) and the first global router still decides: TTL 3
#   bridged wan (LAB_WAN=bridge, one NAT, no router before the server): the server answers at
#     TTL 2 (port unreachable), nothing global before it: TTL 2 by that branch of the rule
# Each must be measured and, where every hop answers, end before HOPS_WAIT_MS (300 ms); on the
# routed wan the wan router must have counted the time exceeded it sent (the probe's TTL 2 or 3
# expired there, and alice's NATs translated the ICMP back to her). The scans of o and q run
# twice in the same topology (the routers' ICMP rate limits must not change the answer).
# Needs root, iproute2 and nftables: "SKIPPED: <reason>", exit 77 otherwise.
# Namespaces are lab.sh's (tpl<pid>-...), removed on every exit by its traps; none may be left.
# shellcheck source-path=SCRIPTDIR
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROBE=${1:-}
if [ -z "$PROBE" ] || [ ! -x "$PROBE" ]; then
    echo "usage: test_hops.sh HOPS_PROBE" >&2
    exit 2
fi
PROBE=$(readlink -f "$PROBE")
LAB_SOURCED=1
# shellcheck source=lab.sh
. "$HERE/lab.sh"

lab_check_env
lab_install_traps
LAB_TMP=$(mktemp -d "/tmp/${LAB_PREFIX}XXXXXX") || exit 1
FAIL=0

# a fresh topology: what lab_run_once resets before a scenario function
topo_begin() {
    LAB_RUN="${LAB_PREFIX}h$1-"
    LAB_LOG="$LAB_TMP/$1"
    mkdir -p "$LAB_LOG"
    WAN_MODE="" ROUTERS="" LAB_PORTNO=() LAB_WANPORT=() LAB_WAN6=() LAB_SYN_BASE=()
    PEER_A_ARGS=() PEER_B_ARGS=() SERVER_ARGS=()
}

# scan NAME HOST WANT_TTL EXPECT: one hops_probe in HOST towards the server; EXPECT is a part
# of the why text, SCAN_MIN_MS and SCAN_MAX_MS (default 0, 300) bound the time it took
scan() {
    local name=$1 host=$2 want=$3 expect=$4 out tx0=0 tx1=0 ttl measured ms
    [ "$WAN_MODE" = routed ] && tx0=$(lab_counter wan inet internet ttlx packets)
    out=$(X "$host" timeout -k 1 10 "$PROBE" "$SERVER_IP" 2>"$LAB_LOG/probe.err")
    [ "$WAN_MODE" = routed ] && tx1=$(lab_counter wan inet internet ttlx packets)
    ttl=$(sed -n 's/^ttl=\([0-9]*\) .*/\1/p' <<<"$out")
    measured=$(sed -n 's/.* measured=\([01]\) .*/\1/p' <<<"$out")
    ms=$(sed -n 's/.* ms=\([0-9]*\) .*/\1/p' <<<"$out")
    if [ "$ttl" != "$want" ] || [ "$measured" != 1 ] || [ -z "$ms" ] || [ "$ms" -ge "${SCAN_MAX_MS:-300}" ] ||
        [ "$ms" -lt "${SCAN_MIN_MS:-0}" ] ||
        [[ "$out" != *"$expect"* ]]; then
        say "FAIL $name: '$out' (want ttl=$want measured=1 ${SCAN_MIN_MS:-0}<=ms<${SCAN_MAX_MS:-300} and '$expect'); stderr: $(cat "$LAB_LOG/probe.err")"
        FAIL=1
        return 1
    fi
    if [ "$WAN_MODE" = routed ] && [ "$tx1" -le "$tx0" ]; then
        say "FAIL $name: the wan router's time-exceeded counter stayed at $tx0 ($out)"
        FAIL=1
        return 1
    fi
    if [ "$WAN_MODE" = routed ]; then
        say "ok   $name: $out (wan time-exceeded $tx0 -> $tx1)"
    else
        say "ok   $name: $out"
    fi
}

topo_begin o
if scn_o; then
    scan "o hard-drop, scan 1" ha 2 "TTL 2: 203.0.113.254 is the first global router (TTL 1: 192.168.1.1)"
    scan "o hard-drop, scan 2" ha 2 "TTL 2: 203.0.113.254 is the first global router (TTL 1: 192.168.1.1)"
else
    say "FAIL: building scenario o's topology"; FAIL=1
fi
lab_teardown

# o again, the answers slowed down on their way to alice (a token bucket of one ICMP on ra's
# LAN port, refilled at 10 kbit/s, ~65 ms per answer): they arrive after hops_start has
# returned, so the scan must hear them through its poll and still end before the deadline
topo_begin s
if scn_o && tc -n "$(N ra)" qdisc add dev p0 root tbf rate 10kbit burst 100 limit 4000; then
    SCAN_MIN_MS=20 scan "o hard-drop, answers slowed" ha 2 "TTL 2: 203.0.113.254 is the first global router (TTL 1: 192.168.1.1)"
else
    say "FAIL: building scenario o's topology with a slow LAN"; FAIL=1
fi
lab_teardown

topo_begin q
if scn_q; then
    scan "q hard-cgnat, scan 1" ha 3 "TTL 3: 203.0.113.254 is the first global router (TTL 1: 192.168.1.1, TTL 2: 100.64.0.1)"
    scan "q hard-cgnat, scan 2" ha 3 "TTL 3: 203.0.113.254 is the first global router (TTL 1: 192.168.1.1, TTL 2: 100.64.0.1)"
else
    say "FAIL: building scenario q's topology"; FAIL=1
fi
lab_teardown

# q with a carrier NAT that sends no time exceeded: TTL 2 stays silent, so the answer is not
# certain before the deadline (a late answer from TTL 2 could still be global); the first global
# router decides all the same
topo_begin g
if scn_q && X cgn nft -f - <<'EOF'
table inet quiet {
    chain o { type filter hook output priority 0; policy accept; icmp type time-exceeded drop; }
}
EOF
then
    SCAN_MIN_MS=300 SCAN_MAX_MS=600 scan "q hard-cgnat, silent carrier NAT" ha 3 "TTL 3: 203.0.113.254 is the first global router (TTL 1: 192.168.1.1, TTL 2: none)"
else
    say "FAIL: building scenario q's topology with a silent carrier NAT"; FAIL=1
fi
lab_teardown

topo_begin b
if lab_base bridge && lab_router ra wan br0 203.0.113.10/24 203.0.113.254 192.168.1.1/24 drop symmetric &&
    lab_host ha ra 192.168.1.2/24 192.168.1.1; then
    scan "bridged wan, one NAT" ha 2 "TTL 2 reached the server with no global router before it"
else
    say "FAIL: building the bridged topology"; FAIL=1
fi
lab_teardown

left=$(ip netns list 2>/dev/null | awk -v p="$LAB_PREFIX" 'index($1, p) == 1 { print $1 }')
if [ -n "$left" ]; then
    say "FAIL: namespaces left: $left"
    FAIL=1
fi
[ "$FAIL" = 0 ] && say "PASS test_hops"
exit "$FAIL"
