#!/usr/bin/env bash
# spike_birthday.sh - Phase 9 research spike: birthday punching through a hard NAT, measured in
# network namespaces. A research tool, not a CTest test (see docs/design/birthday.md).
#
# Topology (reuses tests/natlab/lab.sh's building blocks, sourced with LAB_SOURCED=1):
#
#   hh 192.168.1.2 -- ra (hard: masquerade random, drops inbound) 203.0.113.10
#        -- wan bridge -- ix1 203.0.113.2 / 198.18.0.1 -- mid bridge -- ix2 198.18.0.2 / 198.51.100.1
#        -- wan2 bridge -- rb (easy: port-preserving masquerade, drop or reset) 198.51.100.20
#        -- he 192.168.2.2
#
# ix1 and ix2 are plain routers (forwarding, TTL decrement, ICMP time exceeded), so a SYN from hh
# crosses ra (hop 1), ix1 (hop 2), ix2 (hop 3) before rb: TTL 2 opens ra's mapping and dies at
# ix1; TTL 3 dies at ix2; TTL >= 4 reaches rb (which takes packets for itself whatever the TTL).
#
# Usage: sudo tests/natlab/spike_birthday.sh [OUTDIR]   (default /tmp/spike_birthday.$$)
#   SPIKE_TRIALS (default 20, at most 40), SPIKE_RUNS (space separated run names, default all).
# Output: OUTDIR/*.jsonl (one line per trial), OUTDIR/table.md (the summary); logs on stderr.
# Cleans up its namespaces and processes (by pid) on every exit.

set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB_SOURCED=1
# the spike builds its own routers between the sites on plain bridges: lab.sh's routed wan
# (its default since Phase 9 began) would add a hop and its own filtering to this topology
LAB_WAN=${LAB_WAN:-bridge}
# shellcheck source=lab.sh
. "$HERE/lab.sh"

OUT=${1:-/tmp/spike_birthday.$$}
TRIALS=${SPIKE_TRIALS:-20}
[ "$TRIALS" -le 40 ] || TRIALS=40
PY="$HERE/spike_birthday.py"

lab_check_env
command -v python3 >/dev/null 2>&1 || lab_skip "python3 not installed"
lab_install_traps
mkdir -p "$OUT"

# a bridge namespace (a LAN segment of the internet) with no address and no forwarding
sp_bridge() {
    lab_ns "$1" || return 1
    ip -n "$(N "$1")" link add br0 type bridge || return 1
    ip -n "$(N "$1")" link set br0 type bridge stp_state 0 forward_delay 0 2>/dev/null
    ip -n "$(N "$1")" link set br0 up
}

# counters for the spike: SYNs out of / into the public side, SYN,ACKs and RSTs, ICMP
sp_counters() {
    X "$1" nft -f - <<'EOF'
table ip spike {
    counter syn_out {}
    counter syn_in {}
    counter syn_in_fwd {}
    counter synack_in {}
    counter synack_out {}
    counter rst_out {}
    counter rst_in {}
    counter icmp_te_out {}
    counter icmp_te_in {}
    counter fwd_syn {}
    chain spre {
        type filter hook prerouting priority -300; policy accept;
        iifname "wan0" tcp flags & (syn | ack) == syn counter name syn_in
        iifname "wan0" tcp flags & rst == rst counter name rst_in
        iifname "wan0" icmp type time-exceeded counter name icmp_te_in
    }
    chain sfwd {
        type filter hook forward priority 300; policy accept;
        iifname "wan0" tcp flags & (syn | ack) == syn counter name syn_in_fwd
        iifname "wan0" tcp flags & (syn | ack) == syn | ack counter name synack_in
        tcp flags & (syn | ack) == syn counter name fwd_syn
    }
    chain spost {
        type filter hook postrouting priority 300; policy accept;
        oifname "wan0" tcp flags & (syn | ack) == syn counter name syn_out
        oifname "wan0" tcp flags & (syn | ack) == syn | ack counter name synack_out
        oifname "wan0" tcp flags & rst == rst counter name rst_out
        icmp type time-exceeded counter name icmp_te_out
    }
}
EOF
}

# an internet router: two legs, forwarding, a static route for the far side
sp_ix() {   # sp_ix NAME UPNS1 ADDR1 UPNS2 ADDR2 FAR_NET VIA
    lab_ns "$1" || return 1
    lab_link "$2" br0 "$1" wan0 "$3" || return 1
    lab_link "$4" br0 "$1" wan1 "$5" || return 1
    ip -n "$(N "$1")" route add "$6" via "$7" || return 1
    X "$1" sysctl -qw net.ipv4.ip_forward=1 || return 1
    sp_counters "$1"
}

sp_build() {   # sp_build EASY_POLICY
    lab_wan || return 1
    sp_bridge mid || return 1
    sp_bridge wan2 || return 1
    sp_ix ix1 wan 203.0.113.2/24 mid 198.18.0.1/24 198.51.100.0/24 198.18.0.2 || return 1
    sp_ix ix2 mid 198.18.0.2/24 wan2 198.51.100.1/24 203.0.113.0/24 198.18.0.1 || return 1
    lab_router ra wan br0 203.0.113.10/24 203.0.113.2 192.168.1.1/24 drop symmetric || return 1
    lab_router rb wan2 br0 198.51.100.20/24 198.51.100.1 192.168.2.1/24 "$1" || return 1
    lab_host hh ra 192.168.1.2/24 192.168.1.1 || return 1
    lab_host he rb 192.168.2.2/24 192.168.2.1 || return 1
    lab_acct wan br0 203.0.113.10 198.51.100.20 0 || return 1
    sp_counters ra && sp_counters rb
}

RUN_NO=0
# sp_run NAME EASY_POLICY ARGS... : a fresh topology, TRIALS trials, torn down after
sp_run() {
    local name=$1 policy=$2 rc; shift 2
    if [ -n "${SPIKE_RUNS:-}" ] && ! printf ' %s ' "$SPIKE_RUNS" | grep -q " $name "; then
        return 0
    fi
    RUN_NO=$((RUN_NO + 1))
    LAB_RUN="${LAB_PREFIX}bd${RUN_NO}-"
    sp_build "$policy" || { say "spike: topology for $name failed"; lab_teardown; return 1; }
    if [ "$name" = ttlscan ]; then
        python3 "$PY" ttlscan --ns "$LAB_RUN" >"$OUT/ttlscan.json" &
    else
        python3 "$PY" run --ns "$LAB_RUN" --name "$name" --easy-policy "$policy" \
            --trials "$TRIALS" --out "$OUT/$name.jsonl" "$@" &
    fi
    LAB_PIDS+=("$!")
    wait "$!"; rc=$?
    say "spike: run $name exit $rc; ra conntrack entries $(lab_conntrack ra | wc -l)," \
        "max $(X ra sysctl -n net.netfilter.nf_conntrack_max 2>/dev/null)"
    lab_teardown
    return 0
}

T0=$(now)
sp_run ttlscan drop
# the technique as briefed: low TTL on the SYN, restored right after, connects kept
sp_run lowttl-256-1024 drop --k 256 --m 1024 --ttl 2 --restore 64 --lifetime-check
sp_run lowttl-256-2048 drop --k 256 --m 2048 --ttl 2 --restore 64
sp_run lowttl-128-1024 drop --k 128 --m 1024 --ttl 2 --restore 64
# is the low TTL needed? normal TTL vs an easy NAT that drops / that answers with RST
sp_run ttl64-drop drop --k 256 --m 1024
sp_run ttl64-reset reset --k 256 --m 1024
sp_run lowttl-reset reset --k 256 --m 1024 --ttl 2 --restore 64
# variant: a listener on each of the K ports, the connects closed right after their SYN
sp_run listen-lowttl-drop drop --k 256 --m 1024 --ttl 2 --restore 64 --listen
sp_run listen-lowttl-reset reset --k 256 --m 1024 --ttl 2 --restore 64 --listen
sp_run listen-ttl64-reset reset --k 256 --m 1024 --listen
# guess order: the ports Linux's masquerade random favours (1024-2047) first
sp_run lowfirst-256-1024 drop --k 256 --m 1024 --ttl 2 --restore 64 --order low-first
sp_run lowfirst-128-1024 drop --k 128 --m 1024 --ttl 2 --restore 64 --order low-first
# RST-answering easy NAT, guesses paced over 0.5 s (before the hard side's first retransmission)
sp_run lowttl-reset-pace05 reset --k 256 --m 1024 --ttl 2 --restore 64 --pace 0.5
python3 "$PY" table "$OUT"/*.jsonl >"$OUT/table.md"
cat "$OUT/table.md" >&2
say "spike: done in $(elapsed "$T0") s, results in $OUT"
