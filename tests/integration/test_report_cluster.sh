#!/bin/bash
# Traversal reports across cluster instances (PROTOCOL.md, "Traversal reports"): a pair whose
# sides are registered on two instances, introduced through Redis. Each instance counts the
# report of its own peer, for the session the cluster's punch carried (srv_cl_punch remembers
# it for the connection), direct and relayed alike.
source "$(dirname "$0")/lib.sh" "$@"
source "$TESTDIR/cluster_lib.sh"

echo "across instances" >"$WORK/a.in"
: >"$WORK/b.in"
start_redis
for i in A B; do
    start_inst "$i"
done
for i in A B; do
    wait_until 5 inst_joined "$i" || die "instance $i did not join the cluster"
done

# inst_counted NAME MARK ID RESULT: the instance counted ID's report of the pair's session
inst_counted() {
    inst_says "$1" "$2" "report from $3 \([^)]*\): session $SESS $4 via "
}
for how in direct relay; do
    mA=$(inst_mark A) mB=$(inst_mark B)
    if [ "$how" = direct ]; then
        cross_pair A B "$how across instances"
    else
        cross_pair A B "$how across instances" --relay-only
    fi
    SESS=$(inst_since B "$mB" | sed -n -E 's/.*punch sent: session ([0-9a-f]{32}),.*/\1/p' |
        head -n 1)
    check "$how: B logged the session" [ -n "$SESS" ]
    check "$how: A (the initiator's instance) counted its report as $how" \
        wait_until 5 inst_counted A "$mA" "$PAIR_A" "$how"
    check "$how: B (the target's instance) counted its report as $how" \
        wait_until 5 inst_counted B "$mB" "$PAIR_B" "$how"
    check "$how: neither refused a report" \
        bash -c "! { tail -c +$((mA + 1)) '$(inst_log A)'; tail -c +$((mB + 1)) '$(inst_log B)'; } | grep -q 'report refused'"
done
finish
