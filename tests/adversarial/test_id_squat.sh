#!/bin/bash
# Id squatting (Phase 7, issue 12). Attacks: one key registers id after id, or one address
# registers new ids (each with a fresh key) as fast as it likes, and --id-db keeps them all
# forever; in cluster mode the Redis claim wrote the owner before --max-ids was checked, so a
# refused id stayed taken cluster-wide and Redis grew without bound. Defences: --ids-per-key
# (8), --new-ids-per-hour (20 per address), --id-expire (90 days: the id-db's last-seen stamps,
# which this test edits, and a TTL on the owner key in Redis) and all three checked inside the
# claim script, so that a refused claim writes nothing.
source "$(dirname "$0")/../integration/lib.sh" "$@"
QUOTA=$(dirname "$0")/quota.py
TAG=$$
DB=$WORK/ids.db

start_server --id-db "$DB"
timeout -k 2 60 python3 "$QUOTA" squat 127.0.0.1 "$SERVER_PORT" "$TAG"
check_rc "quota.py squat (default id quotas)" 0 $?
kill -TERM "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null

# ---- cluster mode (before the restart below, which an older server cannot survive) ----
same() { [ -n "$1" ] && [ "$1" = "$2" ]; }
rcli() { timeout 5 redis-cli -p "$REDIS_PORT" "$@"; }
read_until() { # WORD: prints the cluster driver's lines up to WORD
    local l
    while read -r -t 30 l <&"${Q[0]}"; do
        echo "$l"
        [ "$l" = "$1" ] && return 0
    done
    return 1
}
cluster_part() {
    local before after keys_before keys_after ttl l
    start_redis
    start_inst a --max-ids 9
    wait_until 5 inst_joined a || die "instance a never joined"
    coproc Q { timeout -k 2 60 python3 "$QUOTA" cluster 127.0.0.1 "${INST_PORT[a]}" "$TAG"; }
    QPID=$Q_PID
    BG_PIDS+=("$QPID")
    read_until READY || die "the cluster driver never got ready"
    before=$(rcli DBSIZE)
    keys_before=$(rcli --scan | sort)
    echo >&"${Q[1]}"
    read_until DONE || die "the cluster driver never finished"
    after=$(rcli DBSIZE)
    keys_after=$(rcli --scan | sort)
    echo >&"${Q[1]}"
    while read -r -t 10 l <&"${Q[0]}"; do echo "$l"; done
    wait "$QPID"
    check_rc "quota.py cluster (--max-ids 9)" 0 $?
    check "refused claims add no key to Redis ($before keys before, $after after)" \
        same "$before" "$after"
    check "refused claims change no key name in Redis" [ "$keys_before" = "$keys_after" ]
    check "no key names a refused id" [ -z "$(rcli --scan --pattern "*cq1[01]-$TAG*")" ]
    ttl=$(rcli TTL "tcpunch:owner:cq1-$TAG")
    check "an owner key expires after --id-expire unless used (TTL $ttl s, about 90 days)" \
        [ "${ttl:-0}" -gt $((89 * 86400)) ]
}

if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
    source "$(dirname "$0")/../integration/cluster_lib.sh"
    cluster_part
    # Redis gone while the instance shuts down: an orderly exit (it aborted on a double close)
    kill "${INST_PID[a]}" "$REDIS_PID" 2>/dev/null
    wait "${INST_PID[a]}"
    check_rc "the instance stops cleanly while Redis goes away" 0 $?
else
    echo "SKIPPED: redis-server is not installed: the cluster part is skipped" >&2
fi

# ---- --id-expire with --id-db ----
# sq1 was last seen 100 days ago: rewrite its stamp (a line without one gets one)
old=$(($(date +%s) - 100 * 86400))
awk -v id="sq1-$TAG" -v t="$old" '$1 == id { print $1, $2, t; next } { print }' "$DB" >"$DB.new" &&
    mv "$DB.new" "$DB"
start_server --id-db "$DB"
timeout -k 2 60 python3 "$QUOTA" lapse 127.0.0.1 "$SERVER_PORT" "$TAG"
check_rc "quota.py lapse (id-db stamps edited, --id-expire 90)" 0 $?
check "the lapse is logged" grep -q "unused for more than 90 days lapsed" "$SERVER_LOG"
thief=$(python3 "$(dirname "$0")/../integration/auth.py" keys "thief-$TAG" | cut -d' ' -f2)
owner_line() { awk -v id="sq1-$TAG" -v k="$thief" '$1 == id && $2 == k && $3 ~ /^[0-9]+$/' "$DB" | grep -q .; }
check "the id-db names the new owner of sq1" owner_line
kill "$SERVER_PID" 2>/dev/null

finish
