#!/usr/bin/env bash
# test_wh.sh TCPUNCH RENDEZVOUS [REPEAT]: wormhole codes through two NATs (issue 18, docs/
# design/wormhole.md section 6), in lab.sh's scenario a (both NATs port-preserving and dropping
# unsolicited inbound; lab.sh sourced, LAB_SOURCED=1):
#   file: bob behind NAT B runs `send FILE` (no peer) and prints "Code: N-word-word" on stderr;
#         alice behind NAT A runs `receive CODE`: the file arrives (sha256 equal), and it went
#         DIRECT: the router-to-router counter carried at least the file, the rendezvous host
#         under LAB_SERVER_MAX bytes, and both peers say "connected to ...: direct";
#   pipe: bob `listen --code`, alice `--json connect --code CODE`: 1 MiB each way intact,
#         direct by the counters, alice's connected event says "path":"direct";
#   cluster: as file, with bob on the second instance of a cluster joined by Redis (lab.sh's
#         lab_cluster, scenario m's) and alice on the first: the claim finds the channel's
#         instance through Redis, the file goes direct (left out without redis-server).
# Each runs REPEAT times (default 2) in a fresh topology. Needs root, iproute2 and nftables:
# "SKIPPED: <reason>", exit 77 otherwise. Namespaces are lab.sh's (tpl<pid>-...), removed on
# every exit by its traps, the processes by PID (lab_teardown).
# shellcheck source-path=SCRIPTDIR
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TP_BIN=${1:-}
RV_BIN=${2:-}
WH_REPEAT=${3:-2}
if [ -z "$TP_BIN" ] || [ -z "$RV_BIN" ] || [ ! -x "$TP_BIN" ] || [ ! -x "$RV_BIN" ]; then
    echo "usage: test_wh.sh TCPUNCH RENDEZVOUS [REPEAT]" >&2
    exit 2
fi
TP_BIN=$(readlink -f "$TP_BIN")
RV_BIN=$(readlink -f "$RV_BIN")
LAB_SOURCED=1
# shellcheck source=lab.sh
. "$HERE/lab.sh"

lab_check_env
lab_cleanup_stale
lab_install_traps
LAB_TMP=$(mktemp -d "/tmp/${LAB_PREFIX}XXXXXX") || exit 1
FAIL=0
WH_FILE_BYTES=${WH_FILE_BYTES:-$((4 * 1048576))}

# the code bob printed (empty until then)
wh_code() {
    grep -aoE 'Code: [1-9][0-9]{0,5}(-[a-z]{3,8}){2,3}' "$LAB_LOG/b.err" 2>/dev/null | head -n 1 |
        sed 's/^Code: //'
}

wh_dump() {
    local f
    for f in b a; do
        say "-- peer $f exit=$(eval echo "\${RC_$f:-?}") stderr (last 40 lines):"
        tail -n 40 "$LAB_LOG/$f.err" 2>/dev/null | sed 's/^/    /'
    done
    say "-- server stderr (last 30 lines):"
    tail -n 30 "$LAB_LOG/server.err" 2>/dev/null | sed 's/^/    /'
}

# wh_run KIND IT: one run of KIND (file, pipe) in a fresh scenario-a topology; 0 on success
wh_run() {
    local kind=$1 it=$2 t0 pa pb code code_ch i why=() d1 d2 direct srvb want r
    t0=$(now)
    LAB_RUN="${LAB_PREFIX}w${kind:0:1}$it-"
    LAB_LOG="$LAB_TMP/$kind.$it"
    mkdir -p "$LAB_LOG"
    WAN_MODE="" ROUTERS="" LAB_PORTNO=() LAB_WANPORT=() LAB_WAN6=() LAB_SYN_BASE=() LAB_UPSTREAM=()
    PEER_A_ARGS=() PEER_B_ARGS=() SERVER_ARGS=() RELAY_FIRST=0 RC_a="" RC_b=""
    if ! scn_a; then say "FAIL $kind run $it: building scenario a's topology"; lab_teardown; return 1; fi
    # cluster: bob (the maker) on instance two, alice on one, the channel's owner found in Redis
    if [ "$kind" = cluster ] && ! lab_cluster; then say "FAIL cluster run $it: no cluster"; lab_teardown; return 1; fi
    if ! lab_start_server; then wh_dump; lab_teardown; return 1; fi
    if [ "$kind" != pipe ]; then
        head -c "$WH_FILE_BYTES" /dev/urandom >"$LAB_LOG/data.bin"
        : >"$LAB_LOG/b.in"
        : >"$LAB_LOG/a.in"
        mkdir -p "$LAB_LOG/rdir"
        lab_peer "$HOST_B" b --id "$ID_B" "${PEER_B_ARGS[@]}" send "$LAB_LOG/data.bin"
        want=$WH_FILE_BYTES
    else
        head -c "$LAB_DATA_BYTES" /dev/urandom >"$LAB_LOG/a.in"
        head -c "$LAB_DATA_BYTES" /dev/urandom >"$LAB_LOG/b.in"
        lab_peer "$HOST_B" b --id "$ID_B" listen --code
        want=$((2 * LAB_DATA_BYTES))
    fi
    pb=$LAB_PEER_PID
    for ((i = 0; i < 200; i++)); do
        code=$(wh_code)
        [ -n "$code" ] && break
        kill -0 "$pb" 2>/dev/null || break
        sleep 0.05
    done
    if [ -z "$code" ]; then
        say "FAIL $kind run $it: bob printed no 'Code: N-word-word' line within 10 s"
        wh_dump; lab_teardown; return 1
    fi
    note "bob (behind NAT B) made the code $code; alice (behind NAT A) types it"
    code_ch=${code%%-*}
    if [ "$kind" != pipe ]; then
        lab_peer "$HOST_A" a --id "$ID_A" receive "$code" --dir "$LAB_LOG/rdir"
    else
        lab_peer "$HOST_A" a --id "$ID_A" --json connect --code "$code"
    fi
    pa=$LAB_PEER_PID
    wait "$pa"; RC_a=$?
    wait "$pb"; RC_b=$?
    [ "$RC_a" = 0 ] || why+=("alice exited $RC_a")
    [ "$RC_b" = 0 ] || why+=("bob exited $RC_b")
    if [ "$kind" != pipe ]; then
        [ "$(sha256sum <"$LAB_LOG/data.bin")" = "$(sha256sum <"$LAB_LOG/rdir/data.bin" 2>/dev/null)" ] ||
            why+=("the received file's sha256 differs (or it is missing)")
        grep -q 'connected to .*: direct' "$LAB_LOG/a.err" || why+=("alice did not say 'connected to ...: direct'")
    else
        [ "$(sha256sum <"$LAB_LOG/a.in")" = "$(sha256sum <"$LAB_LOG/b.out")" ] || why+=("bob received $(stat -c %s "$LAB_LOG/b.out") bytes, not alice's intact")
        [ "$(sha256sum <"$LAB_LOG/b.in")" = "$(sha256sum <"$LAB_LOG/a.out")" ] || why+=("alice received $(stat -c %s "$LAB_LOG/a.out") bytes, not bob's intact")
        grep -q '"event":"connected".*"path":"direct"' "$LAB_LOG/a.err" ||
            why+=("alice's --json has no connected event with path direct")
    fi
    grep -q 'connected to .*: direct' "$LAB_LOG/b.err" || why+=("bob did not say 'connected to ...: direct'")
    if [ "$kind" = cluster ]; then
        grep -q "register $ID_B from" "$LAB_LOG/server2.err" || why+=("bob did not register on instance two")
        grep -qE "register $ID_A( \(auxiliary\))? from" "$LAB_LOG/server.err" ||
            why+=("alice did not register on instance one")
        grep -qE "code $code_ch|code .*$code_ch" "$LAB_LOG/server2.err" ||
            why+=("instance two (the maker's) logged nothing of channel $code_ch")
    fi
    for r in a b; do
        ! grep -q 'relay via' "$LAB_LOG/$r.err" || why+=("peer $r mentions a relay: $(grep -m1 'relay via' "$LAB_LOG/$r.err")")
    done
    d1=$(lab_counter "$LAB_ACCT_NS" "$LAB_ACCT_FAM" acct a2b bytes)
    d2=$(lab_counter "$LAB_ACCT_NS" "$LAB_ACCT_FAM" acct b2a bytes)
    direct=$((d1 + d2))
    srvb=$(( $(lab_counter srv inet acct rin bytes) + $(lab_counter srv inet acct rout bytes) ))
    [ "$direct" -ge "$want" ] || why+=("only $direct bytes went router to router (want >= $want)")
    [ "$srvb" -lt "$LAB_SERVER_MAX" ] || why+=("the rendezvous host carried $srvb bytes (limit $LAB_SERVER_MAX): relayed?")
    if [ ${#why[@]} -gt 0 ]; then
        say "FAIL $kind run $it after $(elapsed "$t0")s (code $code):"
        for r in "${why[@]}"; do say "   - $r"; done
        say "   counters: direct $direct bytes (a->b $d1, b->a $d2), rendezvous $srvb bytes"
        wh_dump
        lab_teardown
        return 1
    fi
    say "PASS $kind run $it in $(elapsed "$t0")s: code $code, direct $(human "$direct"), rendezvous $(human "$srvb") | $(grep -h 'connected to' "$LAB_LOG/b.err" | head -n 1 | sed 's/.*tcpunch: //')"
    lab_teardown
    rm -rf "$LAB_LOG"
    return 0
}

# WH_KINDS chooses the runs (scripts/demo: file); by default all three
if [ -z "${WH_KINDS:-}" ]; then
    WH_KINDS="file pipe"
    if command -v redis-server >/dev/null 2>&1; then
        WH_KINDS+=" cluster"
    else
        say "SKIPPED: the cluster run (send on one instance, receive on another): no redis-server"
    fi
fi
for kind in $WH_KINDS; do
    ok=0
    for ((it = 1; it <= WH_REPEAT; it++)); do
        if wh_run "$kind" "$it"; then ok=$((ok + 1)); else FAIL=1; fi
    done
    say "wormhole $kind through two NATs: $ok/$WH_REPEAT direct"
done
[ "$FAIL" = 0 ] && say "test_wh: all passed"
exit "$FAIL"
