# Helpers for the cluster tests (sourced after lib.sh): a real redis-server on a loopback port
# in $WORK and rendezvous instances joined through it, each with its own log.
# Skips the test (77) when redis-server is not installed.

command -v redis-server >/dev/null || {
    echo "redis-server is not installed: cluster tests skipped"
    exit 77
}

REDIS_PORT=
REDIS_PID=
declare -A INST_PORT INST_PID

# start_redis [PORT]: a fresh, non-persistent Redis (a restart forgets everything).
start_redis() {
    REDIS_PORT=${1:-$(free_port)} || die "no free port"
    spawn 120 redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize no --dir "$WORK" >>"$WORK/redis.out" 2>&1
    REDIS_PID=$!
    wait_until 5 listening "$REDIS_PORT" || die "redis-server does not listen on $REDIS_PORT"
}

stop_redis() {
    kill "$REDIS_PID" 2>/dev/null
    wait "$REDIS_PID" 2>/dev/null
    wait_until 5 sh -c "! ss -Htln 'sport = :$REDIS_PORT' | grep -q ." || die "Redis did not stop"
}

inst_log() { echo "$WORK/inst-$1.log"; }

# the cluster secret every instance of a test shares (--cluster-secret-file; older servers,
# which the adversarial tests run against too, have no such option)
CLUSTER_SECRET="$WORK/cluster.secret"
head -c 32 /dev/urandom >"$CLUSTER_SECRET"
CLUSTER_ARGS=()
if "$RENDEZVOUS" --help 2>/dev/null | grep -q -- --cluster-secret-file; then
    CLUSTER_ARGS=(--cluster-secret-file "$CLUSTER_SECRET")
fi

# start_inst NAME [FLAGS...]: an instance on a free loopback port that clusters through Redis
# with a 3 s directory TTL; waits until it has joined (or, with Redis down, listens).
start_inst() {
    local name=$1 port log
    shift
    port=$(free_port) || die "no free port"
    log=$(inst_log "$name")
    timeout -k 2 150 "$RENDEZVOUS" -v -l "127.0.0.1:$port" --max-per-ip 0 --rate-per-ip 0 \
        --connect-rate 0 --redis "127.0.0.1:$REDIS_PORT" --public-address "127.0.0.1:$port" \
        --instance-id "$name" --cluster-ttl 3 "${CLUSTER_ARGS[@]}" "$@" \
        >/dev/null 2>>"$log" &
    INST_PID[$name]=$!
    INST_PORT[$name]=$port
    BG_PIDS+=($!)
    wait_until 5 listening "$port" || die "instance $name does not listen on $port"
}

inst_joined() { grep -q "cluster: joined via Redis" "$(inst_log "$1")"; }

# inst_mark NAME / inst_since NAME OFFSET: like log_mark/log_since for one instance
inst_mark() { stat -c %s "$(inst_log "$1")"; }
inst_since() { tail -c +"$(($2 + 1))" "$(inst_log "$1")"; }
inst_says() { inst_since "$1" "$2" | grep -q -E -- "$3"; } # NAME OFFSET REGEX

# wait_reg NAME ID OFFSET: the instance logged the registration of ID after OFFSET
wait_reg() {
    wait_until 10 inst_says "$1" "$3" "register $2 " ||
        die "instance $1 never logged the registration of $2"
}

# listen_on INST ID OUT ERR [FLAGS...]: a background listener registered on INST; pid in $!
listen_on() {
    local inst=$1 id=$2 out=$3 err=$4 mark
    shift 4
    mark=$(inst_mark "$inst")
    spawn 40 "$TCPUNCH" -s "127.0.0.1:${INST_PORT[$inst]}" -i "$id" "$@" listen \
        <"$WORK/b.in" >"$out" 2>"$err"
    LISTEN_PID=$!
    wait_reg "$inst" "$id" "$mark"
}

# connect_on INST ID TARGET [FLAGS...]: connects from INST; exit status in RC_A
connect_on() {
    local inst=$1 id=$2 target=$3
    shift 3
    timeout -k 2 40 "$TCPUNCH" -s "127.0.0.1:${INST_PORT[$inst]}" -i "$id" "$@" connect "$target" \
        <"$WORK/a.in" >"$WORK/a.out" 2>"$WORK/a.err"
    RC_A=$?
}

# cross_pair FROM TO WHAT [FLAGS...]: bob-like listener on TO, alice-like connect from FROM;
# both must exit 0 with both directions intact. Sets PAIR_B (listener id), PAIR_A.
cross_pair() {
    local from=$1 to=$2 what=$3
    shift 3
    PAIR_B=$(uid "b-$to")
    PAIR_A=$(uid "a-$from")
    listen_on "$to" "$PAIR_B" "$WORK/b.out" "$WORK/b.err" "$@"
    local pid_b=$LISTEN_PID
    connect_on "$from" "$PAIR_A" "$PAIR_B" "$@"
    wait "$pid_b"
    RC_B=$?
    check_rc "$what: connect side on $from" 0 "$RC_A"
    check_rc "$what: listen side on $to" 0 "$RC_B"
    same_file "$what: a -> b" "$WORK/a.in" "$WORK/b.out"
    same_file "$what: b -> a" "$WORK/b.in" "$WORK/a.out"
}
