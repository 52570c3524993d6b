# Sourced by the adversarial tests in which a stranger who knows an id goes against a peer
# waiting for its real partner, alice (test_stranger_*.sh): the integration helpers, python3
# (the strangers are scripts in $ADV), a server at $SRV, and alice's id $A and key $KEY_A.
# Usage in a test:  source "$(dirname "$0")/lib.sh" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh" "$@"
ADV=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
command -v python3 >/dev/null || { echo "SKIPPED: python3 is needed" >&2; exit 77; }
start_server
SRV=127.0.0.1:$SERVER_PORT

# key_of NAME: the public key of the peer whose home is $WORK/home/NAME (made if new).
key_of() { TCPUNCH_HOME=$WORK/home/$1 "$TCPUNCH_BIN" id | sed -n 's/^key: *//p'; }
A=$(uid alice)
KEY_A=$(key_of "$A")
[ -n "$KEY_A" ] || die "cannot make alice's identity"

# start_receive_victim SECONDS [ARGS...]: `receive -t SECONDS -v ARGS... --dir $WORK/dst` as
# the id $R (pid $pid_r, output r.out and r.err), registered when it returns.
start_receive_victim() {
    local mark secs=$1
    shift
    mark=$(log_mark)
    spawn 60 "$TCPUNCH" -s "$SRV" -i "$R" -t "$secs" -v receive "$@" --dir "$WORK/dst" \
        >"$WORK/r.out" 2>"$WORK/r.err"
    pid_r=$!
    wait_registered "$R" "$mark"
}

# alice_sends: alice's `send $R $WORK/src/photo.bin`; returns its exit status.
alice_sends() {
    timeout -k 2 30 "$TCPUNCH" -s "$SRV" -i "$A" -t 5 send "$R" "$WORK/src/photo.bin" \
        >/dev/null 2>"$WORK/as.err"
}

# receive_victim_done: the receive victim exits 0, with alice's file stored.
receive_victim_done() {
    wait "$pid_r"
    check_rc "receive: the victim, after alice" 0 $?
    same_file "receive: alice's file" "$WORK/src/photo.bin" "$WORK/dst/photo.bin"
}

# start_chat_victim SECONDS: a `chat -t SECONDS -v` without a peer, registered as a new id $H
# (pid $pid_h, output h.out and h.err); its stdin is a fifo held open on fd 3, so that it
# waits until chat_victim_done.
start_chat_victim() {
    local mark
    H=$(uid chat)
    mkfifo "$WORK/h.fifo"
    exec 3<>"$WORK/h.fifo"
    mark=$(log_mark)
    spawn 60 "$TCPUNCH" -s "$SRV" -i "$H" -t "$1" -v chat <"$WORK/h.fifo" >"$WORK/h.out" \
        2>"$WORK/h.err" 3>&-
    pid_h=$!
    wait_registered "$H" "$mark"
}

# alice_chats: alice's `chat $H` saying "hello from alice"; returns its exit status.
alice_chats() {
    printf 'hello from alice\n' | timeout -k 2 30 "$TCPUNCH" -s "$SRV" -i "$A" -t 5 chat "$H" \
        >"$WORK/ac.out" 2>"$WORK/ac.err"
}

# chat_victim_done: the chat victim got alice's line; its stdin closed, it exits 0.
chat_victim_done() {
    check "chat: the victim got alice's line" grep -q -F -x "$A: hello from alice" "$WORK/h.out"
    exec 3>&-
    wait "$pid_h"
    check_rc "chat: the victim, after alice left" 0 $?
}
