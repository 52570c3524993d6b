#!/bin/bash
# A peer that sends its final record but never its FIN must not hold a `listen` (or connect, or
# a --forward slot) for ever: once both final records are through, the pump waits 10 s at most
# for the FIN (PROTOCOL.md 8.5), then ends with exit 0 (all data arrived, authenticated). An
# idle peer before its final record is NOT cut (an idle ssh session stays up), however long
# the wait: here 12 s, longer than the linger.
source "$(dirname "$0")/../integration/lib.sh" "$@"

ADV=$(cd "$(dirname "$0")" && pwd)
python3 -c 'import ctypes.util, sys; sys.exit(0 if ctypes.util.find_library("sodium") else 1)' ||
    { echo "SKIPPED: python3 cannot load libsodium" >&2; exit 77; }

start_server
SRV=127.0.0.1:$SERVER_PORT
B=$(uid victim)
mark=$(log_mark)
spawn 60 "$TCPUNCH" -s "$SRV" -i "$B" listen </dev/null >"$WORK/v.out" 2>"$WORK/v.err"
VPID=$!
wait_registered "$B" "$mark"

OUT=$(timeout -k 2 50 python3 - "$ADV" "$SERVER_PORT" "$B" "$(uid mallory)" "$VPID" \
    2>"$WORK/m.err" <<'EOF_PY'
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
from advpeer import Identity, ServerConn, PeerConn, Shake, Sealer, Opener, ep_tuple
port, target, me, vpid = int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
ident = Identity(me)
srv = ServerConn(("127.0.0.1", port))
assert srv.register(me, ident).get("type") == "welcome"
punch = srv.connect_to(target)
assert punch and punch.get("type") == "punch", punch
sh = Shake(ident, me, punch)
c = PeerConn(ep_tuple(punch["observed"]))
c.send(sh.answer(c.line()))
assert c.line().get("type") == "confirm"
tx, rx = sh.keys()
st, op = Sealer(tx), Opener(rx)
c.send(st.header)

def alive():
    try:
        os.kill(vpid, 0)
        return True
    except ProcessLookupError:
        return False

out = {}
# idle, our direction open: the victim must stay (its own final record comes at once: stdin
# is /dev/null)
time.sleep(12)
out["alive_after_idle"] = alive()
c.send(st.seal(b"data before the final record\n") + st.seal(b"", final=True))
t0 = time.time()
while alive() and time.time() - t0 < 30:
    time.sleep(0.2)
out["exited_after_s"] = round(time.time() - t0, 1) if not alive() else None
fin = False
for _, f in op.feed(c.recv_some(timeout=0.5)):
    fin = fin or f
out["victim_final"] = fin
print(json.dumps(out), flush=True)
c.close()
EOF_PY
)
echo "  mallory saw: $OUT" >&2
wait "$VPID"
RC=$?
field() {
    python3 -c 'import json, sys; d = json.loads(sys.argv[1] or "{}"); print(d.get(sys.argv[2]))' \
        "$OUT" "$1" 2>/dev/null
}
check "the victim stayed while the peer was idle (12 s)" test "$(field alive_after_idle)" = True
check "the victim sent its final record" test "$(field victim_final)" = True
check "it exited within the 10 s linger after the peer's final record (no FIN)" \
    python3 -c "import sys; v = sys.argv[1]; sys.exit(0 if v != 'None' and 9 <= float(v) <= 13 else 1)" \
    "$(field exited_after_s)"
check_rc "the victim (all data was in)" 0 "$RC"
check "the data reached its stdout" grep -qx 'data before the final record' "$WORK/v.out"
finish
