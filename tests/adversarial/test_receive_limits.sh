#!/bin/bash
# How much a sender may make `receive` store, and for how long it may hold it. The sender is a
# hostile peer (hostile_sender.py: the real handshake, then the file protocol with lies):
#  1. a hello announcing more files than --max-files (default 10000) is refused before any file;
#  2. one announcing more than --max-bytes is refused the same way;
#  3. a header beyond the announced totals (a second file after "count":1, 1 MiB after
#     "bytes":10) is refused and the receiver ends the transfer; the first file stays;
#  4. (root: a 1 MiB tmpfs in a private mount namespace) a hello announcing more than the free
#     space is refused; a file that fits, then a disk that fills up under it: the part file
#     goes at the first write error, while the sender is still sending;
#  5. a sender that trickles a byte every 15 s is cut within ~60 s (less than 64 KiB in 60 s)
#     and its part file removed;
#  6. a directory bomb: empty files at depth 2040 (5 of them made 10,206 directories, 40 MB,
#     under --max-bytes 1) are refused with no directory made; empty files 4 deep, each in new
#     directories, count 4 KiB per directory against --max-bytes.
source "$(dirname "$0")/../integration/lib.sh" "$@"

ADV=$(cd "$(dirname "$0")" && pwd)
python3 -c 'import ctypes.util, sys; sys.exit(0 if ctypes.util.find_library("sodium") else 1)' ||
    { echo "SKIPPED: python3 cannot load libsodium" >&2; exit 77; }
HAVE_FROM=
"$TCPUNCH_BIN" --help | grep -q -- '--from-anyone' && HAVE_FROM=1

start_server
SRV=127.0.0.1:$SERVER_PORT

# start_receive DIR [FLAGS...]: a receive in the background (RPID); its log in r.err
start_receive() {
    local dir=$1 mark
    shift
    mkdir -p "$dir"
    B=$(uid bob)
    mark=$(log_mark)
    spawn 120 "$TCPUNCH" -s "$SRV" -i "$B" --dir "$dir" ${HAVE_FROM:+--from-anyone} "$@" \
        receive >"$WORK/r.out" 2>"$WORK/r.err"
    RPID=$!
    wait_until 10 bash -c "! kill -0 $RPID 2>/dev/null || { tail -c +$((mark + 1)) '$SERVER_LOG' | grep -qF -- '$B'; }"
}

# hostile SCENARIO ARGS...: runs the hostile sender against $B; its JSON report in OUT
hostile() {
    OUT=$(timeout -k 2 100 python3 "$ADV/hostile_sender.py" "$ADV" "$SERVER_PORT" "$B" \
        "$(uid mallory)" "$@" 2>"$WORK/h.err")
    echo "  sender saw: $OUT" >&2
}

# jq-like: field PATH of $OUT (python expression on d)
field() {
    python3 -c 'import json, sys; d = json.loads(sys.argv[1] or "{}"); print(eval(sys.argv[2]))' \
        "$OUT" "$1" 2>/dev/null
}

# receiver_done: waits for the receive (bounded by spawn's timeout) and sets RRC
receiver_done() {
    wait "$RPID"
    RRC=$?
}

# 1. more files than --max-files (the default)
start_receive "$WORK/in1"
hostile announce 20000 20000
receiver_done
check "20000 files announced: refused at the hello, naming --max-files" \
    grep -q -- '--max-files' <<<"$(field 'd["hello"].get("refused", "")')"
check "no file stored" test -z "$(ls -A "$WORK/in1")"
check_rc "the receiver (the transfer was refused as a whole)" 10 "$RRC"

# 2. more than --max-bytes
start_receive "$WORK/in2" --max-bytes 1M
hostile announce 1 $((2 * 1024 * 1024))
receiver_done
check "2 MiB announced to --max-bytes 1M: refused at the hello, naming --max-bytes" \
    grep -q -- '--max-bytes' <<<"$(field 'd["hello"].get("refused", "")')"
check "no file stored" test -z "$(ls -A "$WORK/in2" 2>/dev/null)"
check_rc "the receiver" 10 "$RRC"

# 3. beyond the announced totals
start_receive "$WORK/in3"
hostile beyond
receiver_done
check "the announced file was taken" test "$(field 'd["first"][1].get("ok")')" = True
check "the file beyond the announced count is refused" \
    grep -q 'more files than the 1 announced' <<<"$(field 'd["second"].get("refused", "")')"
check "the receiver ended the transfer after it" test "$(field 'd.get("ended_by_receiver")')" = True
check "the first file is stored" test -f "$WORK/in3/first.txt"
check "the second is not, nor any part file" \
    test -z "$(find "$WORK/in3" -name 'second.bin' -o -name '*.tcpunch-part-*')"
check_rc "the receiver (a file refused)" 10 "$RRC"

# 4. a small file system
if [ "$(id -u)" -ne 0 ] || ! unshare -m true 2>/dev/null; then
    echo "SKIPPED (part 4): a private mount namespace needs root" >&2
else
    for part in total enospc; do
        D=$WORK/tmpfs-$part
        mkdir -p "$D"
        B=$(uid bob)
        mark=$(log_mark)
        spawn 60 unshare -m sh -c 'mount --make-rprivate / 2>/dev/null; mount -t tmpfs -o size=1m tcpunch-test "$1" || exit 99; echo $$ >"$2"; shift 2; exec "$@"' \
            sh "$D" "$WORK/ns.pid" "$TCPUNCH" -s "$SRV" -i "$B" --dir "$D" \
            ${HAVE_FROM:+--from-anyone} receive >"$WORK/r.out" 2>"$WORK/r.err"
        RPID=$!
        wait_registered "$B" "$mark"
        if [ $part = total ]; then
            hostile announce 1 $((4 * 1024 * 1024))
            receiver_done
            check "4 MiB announced to a 1 MiB file system: refused at the hello" \
                grep -q 'do not fit' <<<"$(field 'd["hello"].get("refused", "")')"
            check_rc "the receiver" 10 "$RRC"
        else
            hostile enospc "$(cat "$WORK/ns.pid")" "$D"
            receiver_done
            check "512 KiB announced to the empty 1 MiB file system: accepted" \
                test "$(field 'd["accept"].get("accept")')" = True
            check "a part file while the disk had room" test "$(field 'd["parts_before"]')" = 1
            check "the part file is gone at the first write error (the sender still sending)" \
                test "$(field 'd["parts_after_error"]')" = 0
            check "the file is refused for the write error" \
                grep -q 'writing' <<<"$(field 'd["verdict"].get("refused", "")')"
            check_rc "the receiver" 10 "$RRC"
        fi
    done
    check "the tmpfs mounts stayed private" bash -c "! grep -q tcpunch-test /proc/mounts"
fi

# 6. directories: names deeper than 32 components; new directories count against --max-bytes
start_receive "$WORK/in6" --max-bytes 1
hostile deep 5 2040
receiver_done
check "5 empty files 2040 deep: none taken" test "$(field 'd["ok"]')" = 0
check "each refused for its depth" \
    grep -q 'more than 32 components' <<<"$(field 'd["refused"][0]')"
check "no directory made for them" test "$(find "$WORK/in6" -mindepth 1 | wc -l)" -eq 0
start_receive "$WORK/in7" --max-bytes 40000
hostile deep 5 4
receiver_done
# 3 new directories a file, 4096 bytes each: 3 files fit in 40000 bytes, not 4
check "empty files in new directories: 3 of 5 taken under --max-bytes 40000" \
    test "$(field 'd["ok"]')" = 3
check "the 4th refused naming --max-bytes" grep -q -- '--max-bytes' <<<"$(field 'd["refused"][0]')"
check "at most 9 directories made (40000 / 4096)" \
    test "$(find "$WORK/in7" -mindepth 1 -type d | wc -l)" -le 9

# 5. a trickle: one byte every 15 s
start_receive "$WORK/in5"
hostile trickle 80 "$WORK/in5"
receiver_done
check "the trickling sender was cut" test "$(field 'd["cut"]')" = True
check "within 60-75 s of the accept" python3 -c "import sys; sys.exit(0 if 55 <= float(sys.argv[1]) <= 75 else 1)" "$(field 'd["after_s"]')"
check "its part file is gone" test "$(field 'd["parts"]')" = 0
check "the receiver says it stalled" grep -q 'less than 64 KiB' "$WORK/r.err"
check_rc "the receiver (connection lost)" 5 "$RRC"
finish
