#!/bin/bash
# Both binaries under valgrind (memcheck) on loopback: a direct pair and a relayed pair, each
# piping 1 MiB each way, and a connect to an unknown peer (exit 3), all through one rendezvous
# server, then the server stopped with SIGTERM.
# Every process must exit with its usual status: valgrind turns any memory error, and any
# definite or indirect leak at exit, into status 99.
#
#   test_valgrind.sh TCPUNCH RENDEZVOUS [SANITIZED]   SANITIZED=1: skip (ASan binaries and
#                                                      valgrind cannot run together)
source "$(dirname "$0")/lib.sh" "$@"

if [ "${3:-0}" = 1 ]; then
    echo "SKIPPED: sanitizer build (valgrind cannot run ASan binaries; the normal build runs this)"
    exit 77
fi
if ! command -v valgrind >/dev/null 2>&1; then
    echo "SKIPPED: valgrind not installed"
    exit 77
fi

VG_RC=99
# Wrappers, so that lib.sh starts the server and the peers under valgrind as it starts them
# bare. --log-file per process: the peers and the server run at the same time.
for b in tcpunch rendezvous; do
    real=$TCPUNCH_BIN
    [ "$b" = rendezvous ] && real=$RENDEZVOUS
    cat >"$WORK/vg-$b" <<WRAP
#!/bin/sh
exec valgrind --error-exitcode=$VG_RC --leak-check=full --errors-for-leak-kinds=definite,indirect \\
    --show-leak-kinds=definite,indirect --track-origins=yes --log-file="$WORK/vg-$b.%p.log" \\
    "$real" "\$@"
WRAP
    chmod +x "$WORK/vg-$b"
done
# each peer still gets its own TCPUNCH_HOME (lib.sh), valgrind inside that
peer_home_wrapper "$WORK/vg-tcpunch" "$WORK/vg-home-tcpunch"
TCPUNCH=$WORK/vg-home-tcpunch
RENDEZVOUS=$WORK/vg-rendezvous

start_server
head -c 1048576 /dev/urandom >"$WORK/a.in"
head -c 1048576 /dev/urandom >"$WORK/b.in"

# -t 60: under valgrind everything is ~20x slower, the default 10 s punch timeout is too short
run_pair "$(uid vg-b)" "$(uid vg-a)" "$WORK/a.in" "$WORK/b.in" -t 60
check_rc "direct pair under valgrind: connect side" 0 "$RC_A"
check_rc "direct pair under valgrind: listen side" 0 "$RC_B"
same_file "direct pair: alice -> bob" "$WORK/a.in" "$WORK/b.out"
same_file "direct pair: bob -> alice" "$WORK/b.in" "$WORK/a.out"

run_pair "$(uid vg-rb)" "$(uid vg-ra)" "$WORK/a.in" "$WORK/b.in" -t 60 --relay-only
check_rc "relayed pair under valgrind: connect side" 0 "$RC_A"
check_rc "relayed pair under valgrind: listen side" 0 "$RC_B"
same_file "relayed pair: alice -> bob" "$WORK/a.in" "$WORK/b.out"
same_file "relayed pair: bob -> alice" "$WORK/b.in" "$WORK/a.out"

# an error path too: cleanup on the way out is where leaks hide
timeout -k 2 60 "$TCPUNCH" -s "127.0.0.1:$SERVER_PORT" -i "$(uid vg-c)" -t 60 connect "$(uid nobody)" \
    </dev/null >"$WORK/c.out" 2>"$WORK/c.err"
check_rc "connect to a peer that is not registered, under valgrind" 3 $?

# SIGTERM goes through timeout and valgrind to the server, which shuts down cleanly: only then
# does valgrind check its heap for leaks
kill -TERM "$SERVER_PID"
wait "$SERVER_PID"
check_rc "server under valgrind, after SIGTERM" 0 $?

# the status says it already; the summaries say which process and where
logs=("$WORK"/vg-*.log)
check "valgrind logs from the server and five peers (${#logs[@]} found)" [ "${#logs[@]}" -ge 6 ]
for f in "${logs[@]}"; do
    if grep -q "ERROR SUMMARY: 0 errors" "$f"; then
        pass "$(basename "$f"): no memory errors, no definite or indirect leaks"
    else
        fail "$(basename "$f"): valgrind reported problems:"
        sed -n '/HEAP SUMMARY\|Invalid\|uninitialised\|definitely\|indirectly\|ERROR SUMMARY/p' "$f" |
            head -n 30 >&2
    fi
done
finish
