#!/bin/bash
# Cluster mode on loopback: a real redis-server and three instances. Peers registered on
# different instances connect directly and through the relay (which runs on the target's
# instance); an unknown id is peer-not-found cluster-wide; an id owned on one instance cannot be
# taken on another; an instance killed mid-way: its peers vanish from the directory after the
# TTL and are reachable again once they registered on another instance.
source "$(dirname "$0")/lib.sh" "$@"
source "$TESTDIR/cluster_lib.sh"

head -c 262144 /dev/urandom >"$WORK/a.in"
head -c 262144 /dev/urandom >"$WORK/b.in"
start_redis
for i in A B C; do
    start_inst "$i"
done
for i in A B C; do
    wait_until 5 inst_joined "$i" || die "instance $i did not join the cluster"
done
pass "three instances joined the cluster through Redis"

# ---- an introduction across instances, punched directly (on loopback the punch works)
mA=$(inst_mark A) mB=$(inst_mark B)
cross_pair A B "direct across instances"
check "direct across instances: the connect side punched directly" \
    grep -q -E "connected to $PAIR_B: direct" "$WORK/a.err"
check "direct across instances: A forwarded B's punch to the initiator" \
    inst_says A "$mA" "punch sent: session [0-9a-f]+, $PAIR_A \(initiator\) <-> $PAIR_B \(responder, on instance B\)"
check "direct across instances: B decided the path and punched the target" \
    inst_says B "$mB" "punch sent: session [0-9a-f]+, $PAIR_A \(initiator, on instance A\) <-> $PAIR_B \(responder\).*direct yes"

# ---- the same across instances through the relay, which runs on the target's instance
mB=$(inst_mark B) mC=$(inst_mark C)
cross_pair C B "relayed across instances" --relay-only
check "relayed: the connect side joined the relay at B's public address" \
    grep -q -E "connected to $PAIR_B: relay via 127\.0\.0\.1:${INST_PORT[B]}," "$WORK/a.err"
check "relayed: the listen side joined the relay at B (its own server)" \
    grep -q -E "relay via 127\.0\.0\.1:${INST_PORT[B]}," "$WORK/b.err"
check "relayed: B offered the relay" inst_says B "$mB" "direct no, relay offered"
check "relayed: B spliced the session" inst_says B "$mB" "joined, splicing"
check "relayed: C, the initiator's instance, relayed nothing" \
    sh -c "! tail -c +$((mC + 1)) '$(inst_log C)' | grep -q 'splicing'"

# ---- an unknown id: peer-not-found across the whole cluster
mA=$(inst_mark A)
connect_on A "$(uid nobody-asks)" "$(uid nobody)"
check_rc "an id registered nowhere: peer-not-found" 3 "$RC_A"
check "an id registered nowhere: A's refusal says so" \
    inst_says A "$mA" "peer-not-found: .* is not registered on any server of this cluster"

# ---- ownership is cluster-wide: carol's id, bound on A, cannot be taken on B with another key
carol=$(uid carol)
mA=$(inst_mark A)
spawn 20 "$TCPUNCH" -s "127.0.0.1:${INST_PORT[A]}" -i "$carol" listen </dev/null >/dev/null \
    2>"$WORK/carol.err"
carol_pid=$!
wait_reg A "$carol" "$mA"
kill "$carol_pid" 2>/dev/null
wait "$carol_pid" 2>/dev/null
TCPUNCH_HOME=$WORK/home/thief timeout -k 2 20 "$TCPUNCH" -s "127.0.0.1:${INST_PORT[B]}" \
    -i "$carol" listen </dev/null >/dev/null 2>"$WORK/thief.err"
check_rc "another key takes an id owned on another instance" 2 $?
check "the thief is told the id belongs to another key" \
    grep -q "belongs to another key" "$WORK/thief.err"
mC=$(inst_mark C)
spawn 20 "$TCPUNCH" -s "127.0.0.1:${INST_PORT[C]}" -i "$carol" listen </dev/null >/dev/null \
    2>"$WORK/carol2.err"
carol_pid=$!
if wait_until 10 inst_says C "$mC" "register $carol "; then
    pass "the owner's key registers the id on a third instance"
else
    fail "the owner could not register on C: $(cat "$WORK/carol2.err")"
fi
kill "$carol_pid" 2>/dev/null
wait "$carol_pid" 2>/dev/null

# ---- the cluster's allowlist lives in Redis: while the hash exists only its pairs register
allow_key="tcpunch:authorized"
redis-cli -p "$REDIS_PORT" HSET "$allow_key" "$carol" "$(cat "$WORK/home/$carol/identity.pub")" \
    >/dev/null || die "redis-cli HSET failed"
dave=$(uid dave)
timeout -k 2 20 "$TCPUNCH" -s "127.0.0.1:${INST_PORT[B]}" -i "$dave" --no-retry listen \
    </dev/null >/dev/null 2>"$WORK/dave.err"
check_rc "an id missing from the cluster's allowlist (in Redis) is refused on any instance" 2 $?
check "the refusal names the cluster's allowlist" grep -q "allowlist" "$WORK/dave.err"
mB=$(inst_mark B)
spawn 20 "$TCPUNCH" -s "127.0.0.1:${INST_PORT[B]}" -i "$carol" listen </dev/null >/dev/null \
    2>"$WORK/carol3.err"
carol_pid=$!
if wait_until 10 inst_says B "$mB" "register $carol "; then
    pass "a listed id with its key registers while the allowlist is in force"
else
    fail "carol could not register on B under the allowlist: $(cat "$WORK/carol3.err")"
fi
kill "$carol_pid" 2>/dev/null
wait "$carol_pid" 2>/dev/null
redis-cli -p "$REDIS_PORT" DEL "$allow_key" >/dev/null
mB=$(inst_mark B)
spawn 20 "$TCPUNCH" -s "127.0.0.1:${INST_PORT[B]}" -i "$dave" listen </dev/null >/dev/null \
    2>"$WORK/dave2.err"
dave_pid=$!
if wait_until 10 inst_says B "$mB" "register $dave "; then
    pass "without the hash, the cluster is open again"
else
    fail "dave could not register after the allowlist was removed: $(cat "$WORK/dave2.err")"
fi
kill "$dave_pid" 2>/dev/null
wait "$dave_pid" 2>/dev/null

# ---- an instance killed mid-way
erin=$(uid erin)
mC=$(inst_mark C)
spawn 40 "$TCPUNCH" -s "127.0.0.1:${INST_PORT[C]}" -i "$erin" --no-retry listen \
    <"$WORK/b.in" >/dev/null 2>"$WORK/erin.err"
erin_pid=$!
wait_reg C "$erin" "$mC"
# the instance itself, not the `timeout` around it: SIGKILL, no goodbye to Redis
kill -9 "$(pgrep -P "${INST_PID[C]}")"
wait "${INST_PID[C]}" 2>/dev/null
wait "$erin_pid" 2>/dev/null
mA=$(inst_mark A)
connect_on A "$(uid to-erin)" "$erin"
check_rc "a peer of a killed instance, before its entry expired: peer-not-found" 3 "$RC_A"
check "... naming the instance that is gone" \
    inst_says A "$mA" "peer-not-found: .*instance C, which is not running"
sleep 4 # the TTL (3 s): the dead instance no longer refreshes its entries
mA=$(inst_mark A)
connect_on A "$(uid to-erin)" "$erin"
check_rc "after the TTL the dead instance's peer is gone from the directory" 3 "$RC_A"
check "... and A's refusal says it is registered nowhere" \
    inst_says A "$mA" "peer-not-found: .* is not registered on any server of this cluster"
listen_on B "$erin" "$WORK/b.out" "$WORK/erin2.err"
erin_pid=$LISTEN_PID
connect_on A "$(uid to-erin)" "$erin"
wait "$erin_pid"
RC_B=$?
check_rc "erin re-registered on B: reachable again (connect side)" 0 "$RC_A"
check_rc "erin re-registered on B: reachable again (listen side)" 0 "$RC_B"
same_file "erin re-registered on B: a -> b" "$WORK/a.in" "$WORK/b.out"

finish
