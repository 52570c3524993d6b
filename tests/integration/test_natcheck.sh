#!/bin/bash
# nat-check on loopback, and the server's probe listener: with --probe-listen the verdict is
# "no NAT" (exit 0: the server sees our own address); without a probe port it cannot tell
# (exit 9); --json prints one JSON object on stdout with the documented fields; the probe
# listener takes only `probe`, and a probe with a registered peer's token gets its mapping.
source "$(dirname "$0")/lib.sh" "$@"

T() { timeout -k 2 30 "$TCPUNCH" "$@"; }

# json_check FILE PYTHON-EXPRESSION...: FILE holds exactly one JSON object `o`; each expression
# must be true. Prints what failed.
json_check() {
    python3 - "$@" <<'EOF'
import json, sys
text = open(sys.argv[1]).read()
lines = text.splitlines()
if len(lines) != 1:
    sys.exit("want exactly one line, got %d: %r" % (len(lines), text[:300]))
o = json.loads(lines[0])
if not isinstance(o, dict):
    sys.exit("not an object: %r" % o)
bad = [e for e in sys.argv[2:] if not eval(e, {}, {"o": o})]
if bad:
    sys.exit("false: %s in %s" % (bad, lines[0]))
EOF
}

# ---- usage ----
T --help >"$WORK/help.out" 2>/dev/null
check "--help lists nat-check" grep -q -w "nat-check" "$WORK/help.out"
check "--help lists --json" grep -q -e "--json" "$WORK/help.out"
for code in 7 8 9; do
    check "--help lists exit code $code" grep -q -E "^[[:space:]]*$code[[:space:]]" "$WORK/help.out"
done
T -s 127.0.0.1:9 nat-check extra </dev/null >"$WORK/u.out" 2>"$WORK/u.err"
check_rc "nat-check with an argument" 1 $?
check "nat-check with an argument: nothing on stdout" test ! -s "$WORK/u.out"
timeout -k 2 10 "$RENDEZVOUS" --help >"$WORK/r.out" 2>/dev/null
check "rendezvous --help shows --probe-listen" grep -q -e "--probe-listen" "$WORK/r.out"
timeout -k 2 10 "$RENDEZVOUS" --probe-listen 127.0.0.1 >"$WORK/r.out" 2>"$WORK/r.err"
check_rc "rendezvous --probe-listen without a port" 1 $?

# ---- the server is unreachable: exit 2, and with --json an error event, stdout empty ----
DEAD=$(free_port)
T -s "127.0.0.1:$DEAD" -i "$(uid nc)" --json nat-check >"$WORK/d.out" 2>"$WORK/d.err"
check_rc "nat-check, nothing on the server port" 2 $?
check "unreachable: nothing on stdout" test ! -s "$WORK/d.out"
if json_check "$WORK/d.err" 'o["event"] == "error"' 'o["exit"] == 2' 'o["code"] == "server"' \
    '"'"127.0.0.1:$DEAD"'" in o["message"] or "refused" in o["message"]'; then
    pass "unreachable: one error event on stderr"
else
    fail "unreachable: one error event on stderr"
fi

# ---- a server without a probe port: cannot tell (9) ----
start_server
ID=$(uid nc)
T -s "127.0.0.1:$SERVER_PORT" -i "$ID" nat-check >"$WORK/n9.out" 2>"$WORK/n9.err"
check_rc "nat-check, server without a probe port" 9 $?
check "exit 9: the report says the server has no probe port" grep -q "no probe port" "$WORK/n9.out"
check "exit 9: the report has a verdict line" grep -q "^verdict: .*(exit 9)" "$WORK/n9.out"
check "exit 9: nothing on stderr" test ! -s "$WORK/n9.err"
T -s "127.0.0.1:$SERVER_PORT" -i "$(uid nc)" nat-check --json >"$WORK/j9.out" 2>"$WORK/j9.err"
check_rc "nat-check --json, server without a probe port" 9 $?
if json_check "$WORK/j9.out" 'o["verdict"] == "unknown"' 'o["exit"] == 9' \
    'o["probe_port"] is None' 'o["probe_observed"] is None' 'o["mapping"] == "unknown"' \
    '"probe" in o["reason"]' 'o["nat"] is False' 'o["observed"] == o["local"]'; then
    pass "exit 9: --json report"
else
    fail "exit 9: --json report"
fi
kill "$SERVER_PID" 2>/dev/null
wait "$SERVER_PID" 2>/dev/null
mv "$SERVER_LOG" "$WORK/server-noprobe.log"

# ---- a server with a probe port: no NAT on loopback (0) ----
PROBE_PORT=$(free_port)
start_server --probe-listen "127.0.0.1:$PROBE_PORT"
check "the server listens on the probe port" wait_until 5 listening "$PROBE_PORT"
ID=$(uid nc)
MARK=$(log_mark)
T -s "127.0.0.1:$SERVER_PORT" -i "$ID" nat-check >"$WORK/n0.out" 2>"$WORK/n0.err"
check_rc "nat-check on loopback" 0 $?
check "exit 0: verdict no NAT" grep -q "^verdict: *no NAT" "$WORK/n0.out"
check "exit 0: mapping endpoint-independent" grep -q "^NAT mapping: *endpoint-independent" \
    "$WORK/n0.out"
check "exit 0: port preserved" grep -q "^port preserved: *yes" "$WORK/n0.out"
check "exit 0: nothing on stderr" test ! -s "$WORK/n0.err"
LOCAL=$(sed -n 's/^local endpoint: *//p' "$WORK/n0.out")
PUBLIC=$(sed -n 's/^public endpoint: *\([^ ]*\).*/\1/p' "$WORK/n0.out")
check "exit 0: the public endpoint is the local one ($LOCAL)" test -n "$LOCAL" -a "$LOCAL" = "$PUBLIC"
check "the server recorded mapping independent for $ID" \
    wait_until 5 eval "log_since $MARK | grep -q 'probe from .*: $ID, .*mapping independent'"

ID=$(uid nc)
T -s "127.0.0.1:$SERVER_PORT" -i "$ID" --json nat-check >"$WORK/j0.out" 2>"$WORK/j0.err"
check_rc "nat-check --json on loopback" 0 $?
if json_check "$WORK/j0.out" 'o["verdict"] == "no-nat"' 'o["exit"] == 0' 'o["nat"] is False' \
    'o["mapping"] == "independent"' "o['probe_port'] == $PROBE_PORT" \
    'o["observed"] == o["local"] == o["probe_observed"]' 'o["port_preserved"] is True' \
    'o["reason"] is None' "o['server'] == '127.0.0.1:$SERVER_PORT'" 'isinstance(o["message"], str)'; then
    pass "exit 0: --json report"
else
    fail "exit 0: --json report"
fi
if json_check "$WORK/j0.err" 'o["event"] == "registered"' "o['id'] == '$ID'"; then
    pass "--json: stderr holds only the registered event"
else
    fail "--json: stderr holds only the registered event"
fi

# ---- the probe listener and probes on the main listener, spoken to directly ----
if PYTHONPATH="$TESTDIR" python3 - "$SERVER_PORT" "$PROBE_PORT" "$(uid raw)" >"$WORK/raw.log" 2>&1 <<'EOF'; then
import json, socket, sys
import tpauth
main, probe, ident = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

def sock():
    s = socket.socket()
    s.settimeout(10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return s

def first_line(s):
    """The server speaks first on every listener: a fresh challenge."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(1)
        if not chunk:
            break
        data += chunk
    m = json.loads(data)
    if not tpauth.is_challenge(m):
        sys.exit("FAIL: first line %r, want a challenge" % m)
    return m["nonce"]

def ask_more(s, msg):
    """ask on a connection whose challenge has been read already."""
    s.sendall(json.dumps(msg).encode() + b"\n")
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return json.loads(data)

def ask(s, msg):
    """The first request on a fresh connection: its challenge comes first."""
    first_line(s)
    return ask_more(s, msg)

def expect(cond, what):
    if not cond:
        sys.exit("FAIL: " + what)
    print("ok:", what)

# a registered peer's welcome carries the probe port and a token
ctl = sock()
ctl.bind(("127.0.0.1", 0))
ctl.connect(("127.0.0.1", main))
nonce = first_line(ctl)
w = ask_more(ctl, tpauth.hello_msg(tpauth.Identity(ident), nonce, ident))
expect(w["type"] == "welcome" and w["probe_port"] == probe, "welcome announces the probe port")
expect(len(w["probe_token"]) == 32, "welcome carries a 32-digit token")

# the probe from the same local port: same endpoint, mapping independent
p = sock()
p.bind(ctl.getsockname())
p.connect(("127.0.0.1", probe))
r = ask(p, {"type": "probe", "version": 1, "token": w["probe_token"]})
expect(r == {"type": "observed", "observed": w["observed"], "mapping": "independent"},
       "probe with the token: observed = control endpoint, mapping independent: %r" % r)
expect(p.recv(100) == b"", "the server closes the probe connection after its answer")

# from another local port the mapping differs: dependent
p = sock()
p.bind(("127.0.0.1", 0))
p.connect(("127.0.0.1", probe))
r = ask(p, {"type": "probe", "version": 1, "token": w["probe_token"]})
expect(r.get("mapping") == "dependent", "probe from another port: mapping dependent: %r" % r)

# a probe without a token on the main listener: observed only
p = sock()
p.connect(("127.0.0.1", main))
r = ask(p, {"type": "probe", "version": 1})
expect(r["type"] == "observed" and "mapping" not in r
       and r["observed"] == "127.0.0.1:%d" % p.getsockname()[1],
       "tokenless probe on the main listener: observed without mapping: %r" % r)

# an unknown token is no error
p = sock()
p.connect(("127.0.0.1", probe))
r = ask(p, {"type": "probe", "version": 1, "token": "0" * 32})
expect(r["type"] == "observed" and "mapping" not in r, "unknown token: observed: %r" % r)

# the probe listener takes nothing else
p = sock()
p.connect(("127.0.0.1", probe))
nonce = first_line(p)
r = ask_more(p, tpauth.hello_msg(tpauth.Identity(ident + "x"), nonce, ident + "x"))
expect(r["type"] == "error" and r["code"] == "unexpected-type" and r["fatal"],
       "hello on the probe listener: unexpected-type: %r" % r)

# a probe on a registered control connection is not its first line
r = ask_more(ctl, {"type": "probe", "version": 1})
expect(r["type"] == "error" and r["code"] == "unexpected-type",
       "probe after hello: unexpected-type: %r" % r)
EOF
    pass "probe listener protocol ($(grep -c '^ok:' "$WORK/raw.log") checks)"
else
    cat "$WORK/raw.log" >&2
    fail "probe listener protocol"
fi
check "the server is still running" server_alive
finish
