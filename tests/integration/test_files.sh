#!/bin/bash
# send/receive: several files (one of 100 MiB) and a directory arrive byte-identical and
# verified; an existing file is refused without --force and replaced with it; bad arguments
# fail before any connection; the progress bar under a pseudo-terminal; the config file.
# (The receiver's refusals of hostile names — ../x, /abs, symlinked directories, a wrong
# checksum, a cut connection — are tests/unit/test_files.c: the real sender never sends them.)
source "$(dirname "$0")/lib.sh" "$@"

start_server
SRV=127.0.0.1:$SERVER_PORT
B=$(uid recv)
A=$(uid send)

# recv_send SEND_FLAGS... -- RECV_FLAGS... -- FILES...: a receive, then a send to it.
# Sets RC_S, RC_R; logs in $WORK/s.err and $WORK/r.err.
recv_send() {
    local sflags=() rflags=() mark pid
    while [ "$1" != -- ]; do sflags+=("$1"); shift; done
    shift
    while [ "$1" != -- ]; do rflags+=("$1"); shift; done
    shift
    mark=$(log_mark)
    spawn 120 "$TCPUNCH" -s "$SRV" -i "$B" --from "$A" "${rflags[@]}" receive >"$WORK/r.out" \
        2>"$WORK/r.err"
    pid=$!
    wait_registered "$B" "$mark"
    timeout -k 2 120 "$TCPUNCH" -s "$SRV" -i "$A" "${sflags[@]}" send "$B" "$@" \
        >"$WORK/s.out" 2>"$WORK/s.err"
    RC_S=$?
    wait "$pid"
    RC_R=$?
}

mkdir -p "$WORK/src/tree/deeper" "$WORK/dst"
head -c $((100 * 1024 * 1024)) /dev/urandom >"$WORK/src/big.bin"
head -c 1000 /dev/urandom >"$WORK/src/small.bin"
: >"$WORK/src/empty"
printf 'one\n' >"$WORK/src/tree/a.txt"
printf 'two\n' >"$WORK/src/tree/deeper/b.txt"
chmod 755 "$WORK/src/small.bin"

start=$(date +%s)
recv_send -- --dir "$WORK/dst" -- "$WORK/src/big.bin" "$WORK/src/small.bin" "$WORK/src/empty" \
    "$WORK/src/tree"
check_rc "send of 5 files (100 MiB)" 0 "$RC_S"
check_rc "receive of 5 files" 0 "$RC_R"
pass "100 MiB took $(($(date +%s) - start)) s"
same_file "big.bin" "$WORK/src/big.bin" "$WORK/dst/big.bin"
same_file "small.bin" "$WORK/src/small.bin" "$WORK/dst/small.bin"
same_file "empty file" "$WORK/src/empty" "$WORK/dst/empty"
same_file "tree/a.txt (directory sent recursively)" "$WORK/src/tree/a.txt" "$WORK/dst/tree/a.txt"
same_file "tree/deeper/b.txt" "$WORK/src/tree/deeper/b.txt" "$WORK/dst/tree/deeper/b.txt"
check "the executable bit travels" test -x "$WORK/dst/small.bin"
check "the sender reports every file verified" \
    test "$(grep -c 'verified by' "$WORK/s.err")" -eq 5
check "the receiver logs every file verified" test "$(grep -c ': verified' "$WORK/r.err")" -eq 5
check "no part files left" test -z "$(find "$WORK/dst" -name '*.tcpunch-part-*')"
check "receive writes nothing on stdout" test ! -s "$WORK/r.out"
check "send writes nothing on stdout" test ! -s "$WORK/s.out"
check "stderr is no terminal: summary lines, no bar" \
    bash -c "! grep -q \$'\\r' '$WORK/s.err' && grep -q '5 of 5 files sent' '$WORK/s.err'"

# an existing file: refused without --force (exit 10 on both sides), untouched
printf 'mine\n' >"$WORK/dst/keep.txt"
printf 'theirs\n' >"$WORK/src/keep.txt"
recv_send -- --dir "$WORK/dst" -- "$WORK/src/keep.txt" "$WORK/src/small.bin"
check_rc "send with one existing file" 10 "$RC_S"
check_rc "receive with one existing file" 10 "$RC_R"
check "the existing file is untouched" grep -qx mine "$WORK/dst/keep.txt"
check "the sender names the refused file and --force" \
    grep -q "refused keep.txt: it already exists (the receiver's --force" "$WORK/s.err"
check "no part files left after the refusal" \
    test -z "$(find "$WORK/dst" -name '*.tcpunch-part-*')"
recv_send -- --dir "$WORK/dst" --force -- "$WORK/src/keep.txt"
check_rc "send with --force on the receiver" 0 "$RC_S"
check_rc "receive --force" 0 "$RC_R"
same_file "--force replaced the file" "$WORK/src/keep.txt" "$WORK/dst/keep.txt"

# bad arguments fail before any connection (no receiver runs)
timeout 10 "$TCPUNCH" -s "$SRV" -i "$A" send "$B" "$WORK/nonexistent" 2>"$WORK/bad.err"
check_rc "send of a missing file" 6 $?
check "it names the file" grep -q "nonexistent: No such file" "$WORK/bad.err"
timeout 10 "$TCPUNCH" -s "$SRV" -i "$A" send "$B" 2>"$WORK/bad.err"
check_rc "send without FILE" 1 $?
timeout 10 "$TCPUNCH" -s "$SRV" -i "$A" --from-anyone --dir "$WORK/nope" receive 2>"$WORK/bad.err"
check_rc "receive into a missing --dir" 6 $?
check "it names the directory" grep -q "nope: No such file or directory" "$WORK/bad.err"
mkdir -p "$WORK/x1" "$WORK/x2"
echo 1 >"$WORK/x1/same"
echo 2 >"$WORK/x2/same"
timeout 10 "$TCPUNCH" -s "$SRV" -i "$A" send "$B" "$WORK/x1/same" "$WORK/x2/same" 2>"$WORK/bad.err"
check_rc "two files with one name" 1 $?
check "it says which" grep -q 'would both arrive as "same"' "$WORK/bad.err"

# the progress bar, with stderr on a pseudo-terminal
head -c $((20 * 1024 * 1024)) /dev/urandom >"$WORK/src/pty.bin"
mkdir -p "$WORK/dst2"
mark=$(log_mark)
spawn 60 "$TCPUNCH" -s "$SRV" -i "$B" --from "$A" --dir "$WORK/dst2" receive >"$WORK/r.out" \
    2>"$WORK/r.err"
pid=$!
wait_registered "$B" "$mark"
timeout -k 2 60 python3 - "$WORK/pty.out" "$TCPUNCH" -s "$SRV" -i "$A" send "$B" \
    "$WORK/src/pty.bin" <<'EOF_PY'
import os, pty, subprocess, sys
out, cmd = sys.argv[1], sys.argv[2:]
master, slave = pty.openpty()
p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave)
os.close(slave)
data = b""
while True:
    try:
        chunk = os.read(master, 65536)
    except OSError:  # EIO: the last writer closed the terminal
        break
    if not chunk:
        break
    data += chunk
open(out, "wb").write(data)
sys.exit(p.wait())
EOF_PY
check_rc "send under a pty" 0 $?
wait "$pid"
check_rc "receive of the pty transfer" 0 $?
same_file "pty.bin" "$WORK/src/pty.bin" "$WORK/dst2/pty.bin"
check "the bar shows a percentage" grep -qa '100%' "$WORK/pty.out"
check "the bar shows a rate and an ETA" grep -qaE '/s +ETA [0-9]+:[0-9]{2}' "$WORK/pty.out"
check "the bar is redrawn in place (\\r)" grep -qa $'\r' "$WORK/pty.out"
check "it ends with the summary line" \
    bash -c "tail -n 1 '$WORK/pty.out' | tr -d '\r' | grep -q '1 of 1 file sent'"

# the config file: its settings apply, the environment and flags override it
export TCPUNCH_HOME=$WORK/cfghome
mkdir -p "$TCPUNCH_HOME"
cat >"$TCPUNCH_HOME/config" <<EOF_CFG
# everyday settings
server = $SRV
id = cfg-id     # a comment after the value
timeout = 7.5
relay = never
dir = $WORK/dst
EOF_CFG
"$TCPUNCH_BIN" config >"$WORK/cfg.out" 2>"$WORK/cfg.err"
check_rc "tcpunch config" 0 $?
check "config shows the file's server" grep -qE "^server = $SRV +# config file" "$WORK/cfg.out"
check "config shows the file's timeout" grep -qE "^timeout = 7.5 +# config file" "$WORK/cfg.out"
check "config shows relay = never" grep -qE "^relay = never +# config file" "$WORK/cfg.out"
check "config shows a default" grep -qE "^direct-timeout = 5 +# default" "$WORK/cfg.out"
TCPUNCH_ID=env-id "$TCPUNCH_BIN" config >"$WORK/cfg.out"
check "the environment overrides the file" grep -qE "^id = env-id +# environment" "$WORK/cfg.out"
TCPUNCH_ID=env-id "$TCPUNCH_BIN" -i flag-id --relay-only -t 3 config >"$WORK/cfg.out"
check "a flag overrides the environment" grep -qE "^id = flag-id +# command line" "$WORK/cfg.out"
check "--relay-only overrides relay = never" grep -qE "^relay = only +# command line" \
    "$WORK/cfg.out"
check "-t overrides timeout" grep -qE "^timeout = 3 +# command line" "$WORK/cfg.out"
check "config's output is itself a valid config file" \
    bash -c "cp '$WORK/cfg.out' '$TCPUNCH_HOME/config' && '$TCPUNCH_BIN' config >/dev/null"
# a transfer that needs no flags but --from: server, id and dir from the config file (a new id:
# the server binds an id to the key that first registered it, and this home has its own)
printf 'no flags\n' >"$WORK/src/noflags.txt"
C=$(uid cfg)
cat >"$TCPUNCH_HOME/config" <<EOF_CFG
server = $SRV
id = $C
dir = $WORK/dst
EOF_CFG
mark=$(log_mark)
spawn 60 "$TCPUNCH_BIN" receive --from "$A" 2>"$WORK/r.err"
pid=$!
wait_registered "$C" "$mark"
TCPUNCH_HOME=$WORK/home/$A timeout -k 2 60 "$TCPUNCH_BIN" -s "$SRV" -i "$A" send "$C" \
    "$WORK/src/noflags.txt" 2>"$WORK/s.err"
check_rc "send to a receive configured by file only" 0 $?
wait "$pid"
check_rc "receive with server, id and dir from the config file" 0 $?
same_file "noflags.txt in the configured dir" "$WORK/src/noflags.txt" "$WORK/dst/noflags.txt"
# errors name the file and line
printf 'server = %s\nspeed = 11\n' "$SRV" >"$TCPUNCH_HOME/config"
"$TCPUNCH_BIN" config >/dev/null 2>"$WORK/cfg.err"
check_rc "an unknown key" 1 $?
check "the error gives file:line" grep -qF "$TCPUNCH_HOME/config:2: unknown key \"speed\"" \
    "$WORK/cfg.err"
printf 'timeout = soon\n' >"$TCPUNCH_HOME/config"
"$TCPUNCH_BIN" config >/dev/null 2>"$WORK/cfg.err"
check_rc "a bad value" 1 $?
check "the error names the key and what it wants" \
    grep -qF 'config:1: timeout = "soon": not a number of seconds' "$WORK/cfg.err"
printf 'just words\n' >"$TCPUNCH_HOME/config"
"$TCPUNCH_BIN" config >/dev/null 2>"$WORK/cfg.err"
check_rc "a line without =" 1 $?
# birthday punching's limits: in the file, overridden by a flag, each checked for its range
printf 'birthday-k = 0\nbirthday-m = 100\n' >"$TCPUNCH_HOME/config"
"$TCPUNCH_BIN" --birthday-m 7 config >"$WORK/cfg.out" 2>"$WORK/cfg.err"
check_rc "birthday-k and birthday-m in the file" 0 $?
check "birthday-k from the file" grep -qE '^birthday-k = 0 +# config file$' "$WORK/cfg.out"
check "birthday-m from the command line" grep -qE '^birthday-m = 7 +# command line$' "$WORK/cfg.out"
printf 'birthday-k = 513\n' >"$TCPUNCH_HOME/config"
"$TCPUNCH_BIN" config >/dev/null 2>"$WORK/cfg.err"
check_rc "birthday-k above 512 in the file" 1 $?
check "... names the range" grep -qF 'config:1: birthday-k = "513": not a number from 0 to 512' \
    "$WORK/cfg.err"
: >"$TCPUNCH_HOME/config"
for bad in "--birthday-k 513" "--birthday-k -1" "--birthday-k 1.5" "--birthday-m 4097" \
    "--birthday-m x"; do
    # shellcheck disable=SC2086
    "$TCPUNCH_BIN" $bad config >/dev/null 2>"$WORK/cfg.err"
    check_rc "$bad" 1 $?
    check "$bad: the error names the range" grep -qE -- "${bad% *}: .* is not a number from 0 to (512|4096)" \
        "$WORK/cfg.err"
done
"$TCPUNCH_BIN" config >"$WORK/cfg.out" 2>&1
check "the defaults: birthday-k 256, birthday-m 1024" \
    sh -c "grep -qE '^birthday-k = 256 +# default$' '$WORK/cfg.out' &&
           grep -qE '^birthday-m = 1024 +# default$' '$WORK/cfg.out'"
unset TCPUNCH_HOME
finish
