#!/bin/bash
# Text from the network never drives the terminal. A hostile server's error message and punch
# reason, a peer's chat line and a sender's file names carry OSC window titles (ESC ] 0 ; ...
# BEL), CSI sequences (ESC [ 2 J, and CSI as the C1 control U+009B and as a raw 0x9b byte) and a
# right-to-left override: none of those bytes may reach stderr or the chat's output raw; they are
# shown escaped (\x1b, \u009b). --json lines stay valid JSON whose strings hold no controls
# either. Pipe mode's stdout is data, not text: it stays byte-exact.
# (Peer ids cannot carry any of this: PROTOCOL.md allows [A-Za-z0-9._-] only, and both ends
# reject anything else, which tests/integration/test_hostile covers.)
source "$(dirname "$0")/../integration/lib.sh" "$@"

ADV=$TESTDIR/../adversarial
[ -f "$ADV/advpeer.py" ] || ADV=$(cd "$(dirname "$0")" && pwd)
python3 -c 'import ctypes.util, sys; sys.exit(0 if ctypes.util.find_library("sodium") else 1)' ||
    { echo "SKIPPED: python3 cannot load libsodium" >&2; exit 77; }
HAVE_FROM=
"$TCPUNCH_BIN" --help | grep -q -- '--from-anyone' && HAVE_FROM=1

# no_raw FILE: none of ESC, BEL, CSI (0x9b), U+009B, U+202E in FILE
no_raw() {
    python3 - "$1" <<'EOF_PY'
import sys
data = open(sys.argv[1], "rb").read()
bad = [b for b in (b"\x1b", b"\x07", b"\x9b", b"\xe2\x80\xae") if b in data]
if bad:
    print(f"  raw {bad!r} in {sys.argv[1]}", file=sys.stderr)
sys.exit(1 if bad else 0)
EOF_PY
}

# 1. a fake server's error message and punch reason
python3 - "$ADV" "$TCPUNCH" "$WORK" <<'EOF_PY'
import json, subprocess, sys, time
sys.path.insert(0, sys.argv[1])
from advpeer import FakeServer
tcpunch, work = sys.argv[2], sys.argv[3]
EVIL = "\x1b]0;owned\x07\x1b[2J\x1b[1;1H\u009b31m\u202eevil"

def run(args, script, name, waits=False):
    fs = FakeServer()
    srv = "%s:%d" % fs.addr
    with open(f"{work}/{name}.err", "wb") as err:
        p = subprocess.Popen([tcpunch, "-s", srv, "-i", "victim", "--no-retry", "-t", "2"] + args,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        try:
            peer = fs.accept(timeout=10)
            script(peer)
            if waits:  # a waiting listen logs a failed session and waits for the next order
                time.sleep(3)
                rc = "waiting" if p.poll() is None else p.returncode
            else:
                rc = p.wait(timeout=20)
        except Exception as e:  # bounded: the peer is killed below
            print(f"  {name}: {e!r}", file=sys.stderr)
            rc = -1
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    fs.close()
    open(f"{work}/{name}.rc", "w").write(str(rc))

def refuse(peer):
    peer.msg({"type": "error", "code": "not-authorized", "message": EVIL, "fatal": True})

def bad_punch(peer):
    peer.welcome()
    peer.msg({"type": "punch", "session": "0123456789abcdef0123456789abcdef", "peer": "alice",
              "role": "responder", "observed": "127.0.0.1:9", "endpoints": [],
              "direct": False, "reason": EVIL})
    peer.next_msg(timeout=5)

run(["connect", "bob"], refuse, "error")
run(["--json", "connect", "bob"], refuse, "error-json")
run(["listen"], bad_punch, "reason", waits=True)
EOF_PY
check_rc "a server refusing with a hostile message: connect" 2 "$(cat "$WORK/error.rc")"
check "the raw escapes did not reach stderr" no_raw "$WORK/error.err"
check "the message is shown escaped" grep -qF 'refused: \x1b]0;owned\x07\x1b[2J' "$WORK/error.err"
check "the C1 CSI and the RTL override are shown escaped" \
    grep -qF '\u009b31m\u202eevil (not-authorized)' "$WORK/error.err"
check_rc "--json: the same refusal" 2 "$(cat "$WORK/error-json.rc")"
check "--json: every line is JSON and no string holds a control" python3 - "$WORK/error-json.err" <<'EOF_PY'
import json, sys
ok, seen = True, False
def walk(v):
    if isinstance(v, dict):
        return all(walk(x) for x in v.values())
    if isinstance(v, list):
        return all(walk(x) for x in v)
    if isinstance(v, str):
        return not any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f or c == "\u202e" for c in v)
    return True
for line in open(sys.argv[1], "rb").read().decode().splitlines():
    ev = json.loads(line)
    seen = seen or "owned" in json.dumps(ev)
    if not walk(ev):
        print("  control in", line, file=sys.stderr)
        ok = False
sys.exit(0 if ok and seen else 1)
EOF_PY
check "a punch order with a hostile reason: listen logs it and waits on (got $(cat "$WORK/reason.rc"))" \
    test "$(cat "$WORK/reason.rc")" = waiting
check "the raw escapes in the reason did not reach stderr" no_raw "$WORK/reason.err"
check "the reason is shown escaped" grep -qF 'direct skipped (\x1b]0;owned' "$WORK/reason.err"

start_server
SRV=127.0.0.1:$SERVER_PORT

# 2. a chat line from the peer (the real connect pipes its stdin to the chat)
B=$(uid chatbob)
A=$(uid chatalice)
printf 'hi \033]0;owned\007 \033[2J \302\23331m \23331m \342\200\256evil\n' >"$WORK/chat.in"
mkfifo "$WORK/chat.fifo"
exec 7<>"$WORK/chat.fifo" # the chat's input stays open: it leaves when the peer does
mark=$(log_mark)
spawn 30 "$TCPUNCH" -s "$SRV" -i "$B" chat <"$WORK/chat.fifo" >"$WORK/chat.out" 2>"$WORK/chat.err"
pid=$!
wait_registered "$B" "$mark"
timeout -k 2 20 "$TCPUNCH" -s "$SRV" -i "$A" connect "$B" <"$WORK/chat.in" >/dev/null \
    2>"$WORK/chatc.err"
check_rc "connect piping hostile text into a chat" 0 $?
wait "$pid"
check_rc "the chat" 0 $?
exec 7>&-
check "the chat shows the line" grep -qF "$A: hi " "$WORK/chat.out"
check "no raw escape reached the chat's output" no_raw "$WORK/chat.out"
check "they are shown escaped" \
    grep -qF '\x1b]0;owned\x07 \x1b[2J \u009b31m \x9b31m \u202eevil' "$WORK/chat.out"

# 3. file names from a hostile sender (advpeer: a stranger speaking the file protocol)
B=$(uid recv)
mkdir -p "$WORK/in"
mark=$(log_mark)
spawn 30 "$TCPUNCH" -s "$SRV" -i "$B" --dir "$WORK/in" ${HAVE_FROM:+--from-anyone} receive \
    >"$WORK/recv.out" 2>"$WORK/recv.err"
pid=$!
wait_registered "$B" "$mark"
timeout -k 2 30 python3 - "$ADV" "$SERVER_PORT" "$B" "$(uid mallory)" <<'EOF_PY'
import hashlib, json, sys
sys.path.insert(0, sys.argv[1])
from advpeer import Sealer, Opener, stranger_session
srv, c, tx, rx = stranger_session(int(sys.argv[2]), sys.argv[3], sys.argv[4])
st, op = Sealer(tx), Opener(rx)
got = b""
c.send(st.header)

def say(m):
    c.send(st.seal((json.dumps(m) + "\n").encode()))

def answer():
    """The receiver's next line (each wait bounded: 50 tries of 0.1 s)."""
    global got
    for _ in range(50):
        if b"\n" in got:
            break
        for plain, _ in op.feed(c.recv_some(timeout=0.1, limit=65536)):
            got += plain
    if b"\n" not in got:
        raise SystemExit("the receiver said nothing")
    line, got = got.split(b"\n", 1)
    return json.loads(line)

names = ["\x1b]0;owned\x07title.txt", "\u009b2Jcsi.txt", "a\u202etxt.exe", "ok.txt"]
say({"files": 1, "count": len(names), "bytes": len(names)})
assert answer().get("files") == 1
for n in names:
    say({"name": n, "size": 1, "mode": 0o644})
    if answer().get("accept"):
        c.send(st.seal(b"x"))
        say({"blake2b": hashlib.blake2b(b"x", digest_size=32).hexdigest()})
        answer()
say({"end": True})
answer()
c.send(st.seal(b"", final=True))
c.s.shutdown(1)
c.recv_some(timeout=1)
EOF_PY
check_rc "the hostile sender ran its transfer" 0 $?
wait "$pid"
check "the receiver logged the names" grep -qF 'title.txt' "$WORK/recv.err"
check "no raw escape in the receiver's log" no_raw "$WORK/recv.err"
check "the names are shown escaped" \
    bash -c "grep -qF '\\x1b]0;owned\\x07title.txt' '$WORK/recv.err' && grep -qF '\\u009b2Jcsi.txt' '$WORK/recv.err'"
check "no file was created under a name with a control in it" \
    test "$(find "$WORK/in" -mindepth 1 | LC_ALL=C grep -c $'[\x01-\x1f\x7f]\|\xc2[\x80-\x9f]\|\xe2\x80\xae')" -eq 0
check "the harmless name was stored" test -f "$WORK/in/ok.txt"

# 5. nat-check --json: a probe listener that answers with a hostile error; the reason (which
# quotes it) goes to stdout, where JSON escapes C0 but would pass the C1 CSI and the RTL override
python3 - "$ADV" "$TCPUNCH" "$WORK" <<'EOF_PY'
import subprocess, sys, time
sys.path.insert(0, sys.argv[1])
from advpeer import FakeServer
tcpunch, work = sys.argv[2], sys.argv[3]
fs, pr = FakeServer(), FakeServer()
with open(f"{work}/nc.out", "wb") as out, open(f"{work}/nc.err", "wb") as err:
    p = subprocess.Popen([tcpunch, "-s", "%s:%d" % fs.addr, "-i", "victim", "--no-retry", "-t",
                          "3", "--json", "nat-check"], stdin=subprocess.DEVNULL, stdout=out,
                         stderr=err)
    try:
        peer = fs.accept(timeout=10)
        peer.welcome(probe_port=pr.addr[1], probe_token="a" * 32)
        q = pr.accept(timeout=10, read_hello=False)
        q.msg({"type": "error", "code": "bad-field",
               "message": "x\u009b31mRED \u202eevil \u061cy \u001b[2J"})
        rc = p.wait(timeout=20)
    except Exception as e:  # bounded: killed below
        print(f"  nat-check: {e!r}", file=sys.stderr)
        rc = -1
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
open(f"{work}/nc.rc", "w").write(str(rc))
EOF_PY
check "nat-check --json ran (exit $(cat "$WORK/nc.rc"))" grep -q '"verdict"' "$WORK/nc.out"
check "nat-check --json: no raw C1 or direction mark on stdout" no_raw "$WORK/nc.out"
check "nat-check --json: no raw Arabic letter mark either" \
    bash -c "! grep -qF \"$(printf '\xd8\x9c')\" '$WORK/nc.out'"
check "nat-check --json: the reason shows them escaped" \
    grep -qF '\\u009b31mRED \\u202eevil \\u061cy' "$WORK/nc.out"

# 4. pipe mode: stdout is the peer's bytes, escapes included, unchanged
python3 -c '
import sys
sys.stdout.buffer.write(bytes(range(256)) * 64 + b"\x1b]0;owned\x07\x1b[2J\xc2\x9b\x9b\xe2\x80\xae" * 100)
' >"$WORK/raw.bin"
run_pair "$(uid pipeb)" "$(uid pipea)" "$WORK/raw.bin" "$WORK/raw.bin"
check_rc "pipe: connect" 0 "$RC_A"
check_rc "pipe: listen" 0 "$RC_B"
same_file "pipe: listen's stdout is byte-exact" "$WORK/raw.bin" "$WORK/b.out"
same_file "pipe: connect's stdout is byte-exact" "$WORK/raw.bin" "$WORK/a.out"
finish
