#!/bin/bash
# nat-check on loopback, and the server's probe listener: with --probe-listen the verdict is
# "no NAT" (exit 0: the server sees our own address); without a probe port it cannot tell
# (exit 9); --json prints one JSON object on stdout with the documented fields; the probe
# listener takes only `probe`, and a probe with a registered peer's token gets its mapping.
# The last lines (with easy / hard peer) follow birthday punching: our --birthday-k/-m, the
# server's offer (challenge.features), the kind of side.
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

# ---- a server without a probe port: cannot tell (9); it plans no birthday punch either ----
start_server --birthday-k-max 0
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
    '"probe" in o["reason"]' 'o["nat"] is False' 'o["observed"] == o["local"]' \
    'o["kind"] == "easy"' 'len(o["ports"]) == 1' \
    'o["with_hard"] == {"path": "relay", "message": "relayed (this server does not offer birthday punching)"}'; then
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
check "exit 0: NAT kind easy, no NAT" grep -q "^NAT kind: *easy: no NAT" "$WORK/n0.out"
check "exit 0: with an easy peer, direct" grep -q "^with easy peer: *direct" "$WORK/n0.out"
check "exit 0: with a hard peer, direct by birthday punching (the server offers it)" \
    grep -q "^with hard peer: *direct by birthday punching when the peer takes part too (we guess the hard NAT's ports: ~98% per attempt, at most 1536 SYNs), else relayed$" "$WORK/n0.out"
check "exit 0: nothing says relayed with an easy peer" eval '! grep -q "^with easy peer: .*relay" "$WORK/n0.out"'
# our M counts in the chance and the SYNs; 0 turns it off here
T -s "127.0.0.1:$SERVER_PORT" -i "$(uid nc)" --birthday-m 2048 nat-check >"$WORK/nm.out" 2>/dev/null
check "--birthday-m 2048: the chance and the SYNs follow our M" \
    grep -q "^with hard peer: *direct by birthday punching .*~99.97% per attempt, at most 2560 SYNs" "$WORK/nm.out"
for flag in "--birthday-k 0" "--birthday-m 0"; do
    T -s "127.0.0.1:$SERVER_PORT" -i "$(uid nc)" $flag nat-check >"$WORK/noff.out" 2>/dev/null
    check_rc "nat-check $flag on loopback" 0 $?
    check "$flag: with a hard peer, relayed: off here" \
        grep -q "^with hard peer: *relayed (birthday punching is off here: --birthday-k or --birthday-m is 0)$" "$WORK/noff.out"
    check "$flag: with an easy peer, still direct" grep -q "^with easy peer: *direct (" "$WORK/noff.out"
done
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
    'o["reason"] is None' "o['server'] == '127.0.0.1:$SERVER_PORT'" 'isinstance(o["message"], str)' \
    'o["kind"] == "easy"' 'o["kind_reason"] is None' 'o["ports"] == [int(o["local"].rsplit(":", 1)[1])] * 2' \
    'o["with_easy"]["path"] == "direct"' 'o["with_hard"]["path"] == "birthday"' \
    'o["with_hard"]["message"].startswith("direct by birthday punching when the peer takes part too (")'; then
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

# ---- behind a NAT that maps per destination, as a fake server tells it: the probes from fresh
# ports (bounded, without a token) and the kind of side. natfake.py MAIN PROBE LOG W ANSWER...:
# every welcome says we come from 198.51.100.7:W; the probe answers of one registration give
# the ports of the list in turn ("x": close unanswered). It logs "hello ID" and
# "probe TOKEN|- SOURCE-PORT" per connection. With FAKE_BIRTHDAY=1 in its environment its
# challenges offer birthday punching (features ["birthday"]), else they offer nothing.
cat >"$WORK/natfake.py" <<'EOF'
import base64, json, os, socket, sys, threading, time
main_port, probe_port, log, welcome = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
answers = sys.argv[5:]
END = time.time() + 60
state = {"next": 0}
lock = threading.Lock()

def note(text):
    with lock, open(log, "a") as f:
        f.write(text + "\n")

def send(c, m):
    c.sendall(json.dumps(m).encode() + b"\n")

def readline(c):
    data = b""
    while not data.endswith(b"\n") and time.time() < END:
        try:
            chunk = c.recv(1)
        except socket.timeout:
            continue
        if not chunk:
            return None
        data += chunk
    return json.loads(data) if data.endswith(b"\n") else None

def serve(c, is_probe):
    c.settimeout(0.5)
    with c:
        challenge = {"type": "challenge", "version": 1,
                     "nonce": base64.b64encode(os.urandom(32)).decode()}
        if os.environ.get("FAKE_BIRTHDAY") == "1":
            challenge["features"] = ["birthday"]
        send(c, challenge)
        m = readline(c)
        if m is None:
            return
        if not is_probe:
            with lock:
                state["next"] = 0
            note("hello %s" % m.get("id"))
            send(c, {"type": "welcome", "version": 1, "id": m["id"],
                     "observed": "198.51.100.7:" + welcome, "keepalive": 60,
                     "probe_port": probe_port, "probe_token": "5" * 32})
            while time.time() < END and readline(c) is not None:
                pass
            return
        with lock:
            i = state["next"]
            state["next"] += 1
        note("probe %s %d" % (m.get("token") or "-", c.getpeername()[1]))
        if i < len(answers) and answers[i] != "x":
            send(c, {"type": "observed", "observed": "198.51.100.7:" + answers[i]})
            while time.time() < END and readline(c) is not None:
                pass

def accept(port, is_probe):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(16)
    s.settimeout(0.2)
    while time.time() < END:
        try:
            c, _ = s.accept()
        except socket.timeout:
            continue
        threading.Thread(target=serve, args=(c, is_probe), daemon=True).start()

threading.Thread(target=accept, args=(probe_port, True), daemon=True).start()
accept(main_port, False)
EOF

FAKE_PID=
# natfake W ANSWER...: (re)starts the fake server; sets FAKE_PORT
natfake() {
    if [ -n "$FAKE_PID" ]; then
        kill "$FAKE_PID" 2>/dev/null
        wait "$FAKE_PID" 2>/dev/null
    fi
    FAKE_PORT=$(free_port)
    FAKE_PROBE=$(free_port)
    while [ "$FAKE_PROBE" = "$FAKE_PORT" ]; do FAKE_PROBE=$(free_port); done
    : >"$WORK/fake.log"
    spawn 60 python3 "$WORK/natfake.py" "$FAKE_PORT" "$FAKE_PROBE" "$WORK/fake.log" "$@" \
        >/dev/null 2>"$WORK/fake.err"
    FAKE_PID=$!
    wait_until 5 listening "$FAKE_PORT" && wait_until 5 listening "$FAKE_PROBE" ||
        die "the fake server does not listen"
}
# fake_probes FILE: the probe connections the fake saw ("TOKEN PORT" a line); FILE is the
# human report, whose local endpoint says the control connection's port
fake_probes() { sed -n 's/^probe //p' "$WORK/fake.log"; }
ctl_port() { sed -n 's/^local endpoint: *.*:\([0-9]*\)$/\1/p' "$1"; }
# probes_ok FILE COUNT: COUNT probe connections; the first from the control connection's port
# with the token, every other from a fresh port of its own and without a token
probes_ok() {
    local ctl n=0 token port seen=" "
    ctl=$(ctl_port "$1")
    [ -n "$ctl" ] || return 1
    while read -r token port; do
        n=$((n + 1))
        if [ $n = 1 ]; then
            [ "$token" = "$(printf '5%.0s' $(seq 32))" ] && [ "$port" = "$ctl" ] || return 1
        else
            [ "$token" = - ] && [ "$port" != "$ctl" ] || return 1
            case $seen in *" $port "*) return 1 ;; esac
        fi
        seen="$seen$port "
    done < <(fake_probes)
    [ $n = "$2" ]
}

# sequential: four small steps; the fake offers birthday punching
FAKE_BIRTHDAY=1 natfake 20001 20002 20003 20004 20005
T -s "127.0.0.1:$FAKE_PORT" -i "$(uid nc)" nat-check >"$WORK/hs.out" 2>"$WORK/hs.err"
check_rc "nat-check behind a sequential NAT (fake)" 8 $?
check "sequential: the verdict line" grep -q "^verdict: *NAT with endpoint-dependent mapping (symmetric): a relay is needed, except with an easy peer (birthday punching) (exit 8)$" "$WORK/hs.out"
check "sequential: NAT kind hard, port sequential" grep -q "^NAT kind: *hard: a new mapping per destination, port sequential (steps of at most 1; public ports 20001, 20002, 20003, 20004, 20005)$" "$WORK/hs.out"
check "sequential: with an easy peer, direct by birthday punching" grep -q "^with easy peer: *direct by birthday punching when the peer takes part too (we open 256 mappings with low-TTL SYNs, the peer guesses their ports: ~98% per attempt), else relayed$" "$WORK/hs.out"
check "sequential: with a hard peer, relayed" grep -q "^with hard peer: *relayed (both map per destination: birthday punching would need some 170,000 guesses)$" "$WORK/hs.out"
check "sequential: the verdict line comes before the new lines (existing line order kept)" \
    test "$(sed -n 8p "$WORK/hs.out" | cut -c1-8)" = "verdict:"
check "sequential: 4 probes, the 3 after the first from fresh ports without the token ($(fake_probes | tr '\n' ' '))" \
    probes_ok "$WORK/hs.out" 4
check "sequential: nothing on stderr" test ! -s "$WORK/hs.err"
T -s "127.0.0.1:$FAKE_PORT" -i "$(uid nc)" --birthday-k 64 --json nat-check >"$WORK/hsj.out" 2>/dev/null
check_rc "nat-check --json behind a sequential NAT (fake)" 8 $?
if json_check "$WORK/hsj.out" 'o["verdict"] == "dependent"' 'o["kind"] == "hard-sequential"' \
    'o["ports"] == [20001, 20002, 20003, 20004, 20005]' 'o["kind_reason"] is None' \
    'o["kind_message"].startswith("hard: a new mapping per destination, port sequential")' \
    'o["message"] == "NAT with endpoint-dependent mapping (symmetric): a relay is needed, except with an easy peer (birthday punching)"' \
    'o["with_easy"]["path"] == "birthday"' \
    '"we open 64 mappings with low-TTL SYNs, the peer guesses their ports: ~64% per attempt" in o["with_easy"]["message"]' \
    'o["with_hard"]["path"] == "relay"' 'o["mapping"] == "dependent"' 'o["nat"] is True'; then
    pass "sequential: --json report"
else
    fail "sequential: --json report"
fi

T -s "127.0.0.1:$FAKE_PORT" -i "$(uid nc)" --birthday-k 0 nat-check >"$WORK/hsoff.out" 2>/dev/null
check_rc "nat-check --birthday-k 0 behind a sequential NAT (fake)" 8 $?
check "--birthday-k 0: with an easy peer, relayed: off here" grep -q "^with easy peer: *relayed (birthday punching is off here: --birthday-k or --birthday-m is 0)$" "$WORK/hsoff.out"

# random (masquerade random): large steps; a fake that does not offer birthday punching
natfake 33017 8011 50122 1999 47010
T -s "127.0.0.1:$FAKE_PORT" -i "$(uid nc)" --json nat-check >"$WORK/hrj.out" 2>/dev/null
check_rc "nat-check --json behind a random NAT (fake)" 8 $?
if json_check "$WORK/hrj.out" 'o["kind"] == "hard-random"' \
    'o["ports"] == [33017, 8011, 50122, 1999, 47010]' \
    'o["kind_message"].startswith("hard: a new mapping per destination, port random")' \
    'o["with_easy"] == {"path": "relay", "message": "relayed (this server does not offer birthday punching)"}' \
    'o["with_hard"]["path"] == "relay"'; then
    pass "random: --json report (the server offers no birthday punching: relayed)"
else
    fail "random: --json report (the server offers no birthday punching: relayed)"
fi

# a fresh-port probe unanswered: no more are tried, and the kind cannot be told
FAKE_BIRTHDAY=1 natfake 20001 20002 20003 x 20005
T -s "127.0.0.1:$FAKE_PORT" -i "$(uid nc)" nat-check >"$WORK/hu.out" 2>"$WORK/hu.err"
check_rc "nat-check, a fresh-port probe unanswered (fake)" 8 $?
check "unanswered: NAT kind unknown, with why" grep -q "^NAT kind: *unknown: a new mapping per destination, but 3 mappings seen (4 needed): cannot tell random from sequential ports.*a probe from a fresh port: " "$WORK/hu.out"
check "unanswered: mapping per destination, so hard: birthday with an easy peer" grep -q "^with easy peer: *direct by birthday punching" "$WORK/hu.out"
check "unanswered: relayed with a hard peer" grep -q "^with hard peer: *relayed (both map" "$WORK/hu.out"
check "unanswered: 3 probes, none after the failed one ($(fake_probes | tr '\n' ' '))" \
    probes_ok "$WORK/hu.out" 3

# easy, the port changed: no probes from fresh ports
natfake 61001 61001
T -s "127.0.0.1:$FAKE_PORT" -i "$(uid nc)" nat-check >"$WORK/he.out" 2>"$WORK/he.err"
check_rc "nat-check behind an EIM NAT that changes the port (fake)" 7 $?
check "EIM: NAT kind easy, port changed" grep -q "^NAT kind: *easy: one mapping for all destinations, port changed$" "$WORK/he.out"
check "EIM: with an easy peer, direct" grep -q "^with easy peer: *direct" "$WORK/he.out"
check "EIM: with a hard peer, relayed (this fake offers no birthday punching)" grep -q "^with hard peer: *relayed (this server does not offer birthday punching)$" "$WORK/he.out"
check "EIM: one probe only ($(fake_probes | tr '\n' ' '))" probes_ok "$WORK/he.out" 1
kill "$FAKE_PID" 2>/dev/null
wait "$FAKE_PID" 2>/dev/null
finish
