#!/bin/bash
# Cluster mode when Redis goes away: each instance keeps serving its own peers (registration of
# ids it knows, introductions among its peers), refuses what needs the cluster with a message
# naming the outage, and rejoins by itself when Redis is back: peers that registered during the
# outage are re-announced, so introductions across instances work again.
source "$(dirname "$0")/lib.sh" "$@"
source "$TESTDIR/cluster_lib.sh"

head -c 65536 /dev/urandom >"$WORK/a.in"
head -c 65536 /dev/urandom >"$WORK/b.in"
start_redis
start_inst A
start_inst B
for i in A B; do
    wait_until 5 inst_joined "$i" || die "instance $i did not join the cluster"
done

# register_once INST ID: binds ID to its key cluster-wide (and in INST's cache of owners)
register_once() {
    local mark pid
    mark=$(inst_mark "$1")
    spawn 20 "$TCPUNCH" -s "127.0.0.1:${INST_PORT[$1]}" -i "$2" listen </dev/null >/dev/null \
        2>>"$WORK/once.err"
    pid=$!
    wait_reg "$1" "$2" "$mark"
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
}
la=$(uid la) ca=$(uid ca) bob=$(uid bob)
register_once A "$la"
register_once A "$ca"
register_once B "$bob"

# ---- Redis goes down
mA=$(inst_mark A) mB=$(inst_mark B)
stop_redis
check "A logged the outage" wait_until 10 inst_says A "$mA" "cluster: Redis at .* unavailable"
check "B logged the outage" wait_until 10 inst_says B "$mB" "cluster: Redis at .* unavailable"
sleep 3 # a few failed reconnects
n=$(inst_since A "$mA" | grep -c "cluster: Redis at .* unavailable")
check "the outage is logged once, not once per retry ($n)" test "$n" -eq 1
check "A is still running" kill -0 "${INST_PID[A]}"

# local introductions go on, between ids this instance knows
listen_on A "$la" "$WORK/b.out" "$WORK/b.err"
pid_b=$LISTEN_PID
connect_on A "$ca" "$la"
wait "$pid_b"
RC_B=$?
check_rc "Redis down: a local introduction (connect side)" 0 "$RC_A"
check_rc "Redis down: a local introduction (listen side)" 0 "$RC_B"
same_file "Redis down: a local introduction: a -> b" "$WORK/a.in" "$WORK/b.out"

# a peer of B registers during the outage; from A it cannot be found, and A says why
listen_on B "$bob" "$WORK/bob.out" "$WORK/bob.err"
bob_pid=$LISTEN_PID
mA=$(inst_mark A)
connect_on A "$ca" "$bob"
check_rc "Redis down: a peer of another instance is peer-not-found" 3 "$RC_A"
check "... and A's refusal names the outage" \
    inst_says A "$mA" "peer-not-found: .*the cluster is unavailable"
check "bob still waits on B" kill -0 "$bob_pid"

# an id no instance has seen cannot be bound while the owners are unreachable
TCPUNCH_HOME=$WORK/home/newbie timeout -k 2 10 "$TCPUNCH" -s "127.0.0.1:${INST_PORT[A]}" \
    -i "$(uid newbie)" --no-retry listen </dev/null >/dev/null 2>"$WORK/newbie.err"
check "Redis down: a new id is refused for now (internal), not bound locally" \
    grep -q "cannot check id ownership now" "$WORK/newbie.err"

# ---- Redis comes back (empty: no persistence in this test)
mA=$(inst_mark A) mB=$(inst_mark B)
start_redis "$REDIS_PORT"
check "A rejoined the cluster" wait_until 40 inst_says A "$mA" "cluster: Redis at .* is back after"
check "B rejoined the cluster" wait_until 40 inst_says B "$mB" "cluster: Redis at .* is back after"
connect_on A "$ca" "$bob"
wait "$bob_pid"
RC_B=$?
check_rc "Redis back: bob, registered on B during the outage, is reachable from A" 0 "$RC_A"
check_rc "Redis back: bob's side" 0 "$RC_B"
same_file "Redis back: a -> bob" "$WORK/a.in" "$WORK/bob.out"
check "Redis back: A forwarded B's punch" \
    inst_says A "$mA" "punch sent: .*<-> $bob \(responder, on instance B\)"

finish
