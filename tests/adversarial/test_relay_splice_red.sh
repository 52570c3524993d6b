#!/usr/bin/env bash
# A relayed peer against the relay's splice(2) path (relay_splice_red.py): socket tricks a
# plain read absorbs and splice may not. urgent: TCP urgent data (MSG_OOB) mid-stream, where
# splice stops; before the fix the session stalled and the server spun on the readable socket.
# ends: every way a spliced session ends gives its sockets and pipes back.
# Run on both paths (adversarial.relay_splice_red.copy: --relay-copy through lib.sh).
source "$(dirname "$0")/../integration/lib.sh"

command -v python3 >/dev/null || { echo "SKIPPED: python3 is not installed" >&2; exit 77; }
[ -r /proc/self/stat ] || { echo "SKIPPED: no /proc" >&2; exit 77; }

hostile() { # MODE SERVER-FLAGS...
    local mode=$1
    shift
    start_server "$@"
    timeout -k 2 60 python3 "$(dirname "$0")/relay_splice_red.py" "$mode" 127.0.0.1 \
        "$SERVER_PORT" "$SERVER_PID"
    check_rc "relay_splice_red.py $mode (server $*)" 0 $?
    check "the server survived relay_splice_red.py $mode" server_alive
    kill "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null
}

hostile urgent
hostile ends --relay-bytes 1M --relay-idle 2 --relay-per-peer 0 --relay-per-ip 0 --new-ids-per-hour 0

# small pipes: past the user's pipe-user-pages-soft (spent by pipe_pages_hog.py, as many
# sessions or any other process of the server's user would) new pipes have 2 pages and cannot
# grow; splicing through them cost more CPU than the copy. Such a session copies, and splices
# again once the pages are back. Root does not count pipe pages: the server and the hog run as
# nobody (setpriv), so this needs root.
if [ "${TCPUNCH_TEST_RELAY_COPY:-0}" = 1 ]; then
    echo "SKIPPED: small pipes (the splice path's case)" >&2
elif [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null || [ ! -x /usr/bin/python3 ]; then
    echo "SKIPPED: small pipes (needs root, setpriv and /usr/bin/python3)" >&2
else
    AS_NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)
    printf '#!/bin/sh\nexec %s "%s" "$@"\n' "${AS_NOBODY[*]}" "$RENDEZVOUS" >"$WORK/srv-nobody"
    chmod 755 "$WORK/srv-nobody"
    REAL_RENDEZVOUS=$RENDEZVOUS
    RENDEZVOUS=$WORK/srv-nobody
    start_server
    RENDEZVOUS=$REAL_RENDEZVOUS
    "${AS_NOBODY[@]}" timeout -k 2 60 /usr/bin/python3 "$(dirname "$0")/pipe_pages_hog.py" 50 \
        >"$WORK/hog.out" 2>&1 &
    HOG=$!
    BG_PIDS+=($HOG)
    wait_until 10 grep -q "spent" "$WORK/hog.out"
    check "the hog spent nobody's pipe pages ($(cat "$WORK/hog.out"))" grep -q "^spent" "$WORK/hog.out"
    mark=$(log_mark)
    timeout -k 2 60 python3 "$(dirname "$0")/relay_splice_red.py" carry 127.0.0.1 "$SERVER_PORT" \
        "$SERVER_PID"
    check_rc "relay_splice_red.py carry, pipe pages spent" 0 $?
    check "with 2-page pipes the session copies" \
        grep -q "copying through user space (no pipe: pipes of less than 64 KiB" <(log_since "$mark")
    check "... and does not splice through them" \
        bash -c '! grep -q "splicing in the kernel" "$1"' _ <(log_since "$mark")
    kill "$HOG"
    wait "$HOG" 2>/dev/null
    mark=$(log_mark)
    timeout -k 2 60 python3 "$(dirname "$0")/relay_splice_red.py" carry 127.0.0.1 "$SERVER_PORT" \
        "$SERVER_PID"
    check_rc "relay_splice_red.py carry, pipe pages back" 0 $?
    check "with the pages back the next session splices" \
        grep -q "splicing in the kernel" <(log_since "$mark")
    check "the server survived" server_alive
    kill "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null
fi
finish
