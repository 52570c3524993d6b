#!/usr/bin/env bash
# Registration proof, id ownership (across a restart with --id-db), the allowlist, the admission
# secret and the server's limits: raw protocol checks (auth.py) and the real peers against them.
source "$(dirname "$0")/lib.sh"

AUTH="$TESTDIR/auth.py"
raw() { # DESCRIPTION MODE ARGS...: runs auth.py, pass/fail by its status
    local what=$1
    shift
    timeout -k 2 60 python3 "$AUTH" "$@" >"$WORK/raw-$1.log" 2>&1
    local rc=$?
    if [ "$rc" -eq 0 ]; then
        pass "$what ($(grep -c '^ok' "$WORK/raw-$1.log") checks)"
    else
        grep -v '^ok' "$WORK/raw-$1.log" >&2
        fail "$what: auth.py $1 exit $rc"
    fi
}

stop_server() {
    kill -TERM "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
}

# ---- signatures, ownership, candidates; the owner survives a restart with --id-db ----
DB=$WORK/ids.db
OWNED=$(uid owned)
start_server --id-db "$DB"
raw "signatures, ownership, punch keys, candidates" basic 127.0.0.1 "$SERVER_PORT" "$OWNED"
# awk, not a regex: the base64 key may hold + and /
check "the id database records the owner (and its last-seen time)" awk -v id="$OWNED" \
    -v key="$(python3 "$AUTH" keys "$OWNED" | cut -d' ' -f2)" \
    '$1 == id && $2 == key && $3 ~ /^[0-9]+$/ { found = 1 } END { exit !found }' "$DB"
check "one log line per refusal (bad-signature)" grep -q "refused .*bad-signature" "$SERVER_LOG"
check "one log line per refusal (bad-endpoint)" grep -q "refused .*bad-endpoint: endpoint 224.0.0.1:5000 is a multicast address" "$SERVER_LOG"
stop_server
start_server --id-db "$DB"
raw "ownership after a restart" restart 127.0.0.1 "$SERVER_PORT" "$OWNED"

# the real peers: an id owned by one identity is refused to another, with the server's words
IDP=$(uid peer-owned)
TCPUNCH_HOME=$WORK/home-a timeout -k 2 20 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$IDP" \
    connect "$(uid nobody)" </dev/null >/dev/null 2>"$WORK/own-a.err"
check_rc "the first identity takes $IDP (then finds nobody)" 3 $?
TCPUNCH_HOME=$WORK/home-b timeout -k 2 20 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$IDP" \
    listen </dev/null >/dev/null 2>"$WORK/own-b.err"
check_rc "listen as $IDP with another identity: final, not retried" 2 $?
check "it says id-owned" grep -q "id-owned" "$WORK/own-b.err"
stop_server

# a damaged database: refuse to start, naming the line; a torn last line is only dropped
printf 'ok-id %s\nnot a pair at all\n' "$(python3 "$AUTH" keys x | cut -d' ' -f2)" >"$WORK/bad.db"
timeout -k 2 10 "$RENDEZVOUS" -l "127.0.0.1:$(free_port)" --id-db "$WORK/bad.db" >/dev/null 2>"$WORK/bad.err"
check_rc "a corrupt --id-db" 3 $?
check "the message names the file and line 2" grep -q "bad.db:2:" "$WORK/bad.err"
printf 'ok-id %s\ntorn AAAA' "$(python3 "$AUTH" keys x | cut -d' ' -f2)" >"$WORK/torn.db"
start_server --id-db "$WORK/torn.db"
check "a torn last line is dropped with a warning" grep -q "torn.db: 1 line dropped" "$SERVER_LOG"
check "and the file rewritten without it" test "$(wc -l <"$WORK/torn.db")" -eq 1
stop_server

# ---- the allowlist ----
python3 "$AUTH" keys az-alice az-bob >"$WORK/authorized"
printf 'az-bob AAAA\n' >"$WORK/authorized.bad"
timeout -k 2 10 "$RENDEZVOUS" -l "127.0.0.1:$(free_port)" --authorized "$WORK/authorized.bad" \
    >/dev/null 2>"$WORK/azbad.err"
check_rc "a bad --authorized file" 3 $?
check "the message names the line" grep -q "authorized.bad:1: the key of \"az-bob\"" "$WORK/azbad.err"
start_server --authorized "$WORK/authorized"
# SIGHUP to the server itself: timeout(1), its parent, would pass it on and then kill it
RPID=$(pgrep -P "$SERVER_PID" | head -n 1)
raw "allowlist, SIGHUP reload" authorized 127.0.0.1 "$SERVER_PORT" "${RPID:-$SERVER_PID}" \
    "$WORK/authorized"
check "SIGHUP with a bad file logs the line and keeps the list" \
    grep -q "keeping the previous allowlist: .*authorized:2:" "$SERVER_LOG"
stop_server

# ---- the admission secret ----
head -c 48 /dev/urandom | base64 >"$WORK/secret"
printf 'not the secret\n' >"$WORK/wrong"
PROBE=$(free_port)
start_server --secret-file "$WORK/secret" --probe-listen "127.0.0.1:$PROBE"
raw "admission secret" secret 127.0.0.1 "$SERVER_PORT" "$PROBE" "$WORK/secret"
check "one log line per refusal (not-admitted)" grep -q "refused .*not-admitted" "$SERVER_LOG"

# the real peers with the secret: registration, the probe and the relay path all admitted
printf 'private data\n' >"$WORK/p.in"
run_pair "$(uid priv-b)" "$(uid priv-a)" "$WORK/p.in" /dev/null --secret-file "$WORK/secret" \
    --relay-only
check_rc "private server, relay only: connect" 0 "$RC_A"
check_rc "private server, relay only: listen" 0 "$RC_B"
same_file "private server: data through the relay" "$WORK/p.in" "$WORK/b.out"
TCPUNCH_SECRET_FILE=$WORK/secret timeout -k 2 20 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" \
    -i "$(uid priv-nc)" nat-check >"$WORK/nc.out" 2>"$WORK/nc.err"
check_rc "nat-check with the secret (env): the probe is admitted" 0 $?
timeout -k 2 20 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$(uid stranger)" \
    --secret-file "$WORK/wrong" listen </dev/null >/dev/null 2>"$WORK/wrong.err"
check_rc "listen with a wrong secret: final, not retried" 2 $?
check "it says not-admitted" grep -q "not-admitted" "$WORK/wrong.err"
timeout -k 2 20 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$(uid stranger)" listen \
    </dev/null >/dev/null 2>"$WORK/none.err"
check_rc "listen without the secret" 2 $?
timeout -k 2 20 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i x --secret-file "$WORK/missing" \
    listen </dev/null >/dev/null 2>"$WORK/missing.err"
check_rc "an unreadable --secret-file" 6 $?
stop_server

# ---- limits ----
start_server --max-per-ip 3 --rate-per-ip 5 --connect-rate 2
raw "per-address connections and rate, connect rate" limits 127.0.0.1 "$SERVER_PORT"
check "one log line per refusal (too-many-connections)" grep -q "refused .*too-many-connections" "$SERVER_LOG"
check "one log line per refusal (rate-limited)" grep -q "refused .*rate-limited" "$SERVER_LOG"
stop_server

finish
