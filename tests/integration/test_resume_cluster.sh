#!/usr/bin/env bash
# The server's side of resumable sessions across two cluster instances (resume_srv.py cluster):
# hello.features and connect.resume travel in the bus introduce into both punches, and a hello
# with replace on one instance closes the id's registration of the same key on the other
# (bus message replace). Skipped (77) without redis-server.
source "$(dirname "$0")/lib.sh" "$@"
source "$TESTDIR/cluster_lib.sh"

start_redis
for i in A B; do
    start_inst "$i"
done
for i in A B; do
    wait_until 5 inst_joined "$i" || die "instance $i did not join the cluster"
done
mA=$(inst_mark A) mB=$(inst_mark B)
timeout -k 2 60 python3 "$TESTDIR/resume_srv.py" cluster 127.0.0.1 "${INST_PORT[A]}" \
    "${INST_PORT[B]}" >"$WORK/raw-cluster.log" 2>&1
rc=$?
if [ "$rc" -eq 0 ]; then
    pass "features, resume root and replace across instances ($(grep -c '^ok' "$WORK/raw-cluster.log") checks)"
else
    grep -v '^ok' "$WORK/raw-cluster.log" >&2
    fail "resume_srv.py cluster exit $rc"
fi
check "B told A to close the replaced registration" \
    inst_says B "$mB" "cluster: rep-[0-9-]+ \(replace\) was on instance A: told it to close"
check "B logs the punch that resumes" inst_says B "$mB" "punch sent: .*on instance A.*, resuming 0123456789abcdef"
check "A closed it" inst_says A "$mA" "replace rep-[0-9-]+: the connection from .* gives way to one on instance B"
finish
