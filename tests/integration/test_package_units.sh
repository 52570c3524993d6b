#!/usr/bin/env bash
# packaging/unit.cmake, the packaged copies of deploy/'s systemd units, as a script on fixtures
# (no root, no build): the deploy/ units come out with the package's paths and the tcpunch
# user, their hardening untouched; a unit the package cannot translate faithfully is refused.
# args: SOURCE_DIR
set -uo pipefail

src=${1:?usage: test_package_units.sh SOURCE_DIR}
TEST_NAME=test_package_units
FAILS=0
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tcpunch-$TEST_NAME.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

fail() {
    echo "FAIL [$TEST_NAME]: $*" >&2
    FAILS=$((FAILS + 1))
}
pass() {
    echo "ok   [$TEST_NAME]: $*"
}
# unit IN OUT: runs the script; its exit status
unit() {
    cmake -DIN="$1" -DOUT="$2" -P "$src/packaging/unit.cmake" >"$WORK/cmake.log" 2>&1
}

# the real units
for u in deploy/tcpunch-rendezvous.service deploy/cluster/tcpunch-rendezvous@.service; do
    out=$WORK/$(basename "$u")
    if ! unit "$src/$u" "$out"; then
        fail "$u is refused: $(cat "$WORK/cmake.log")"
        continue
    fi
    pass "$u translates"
    if ! grep -q -x 'User=tcpunch' "$out" || ! grep -q -x 'Group=tcpunch' "$out"; then
        fail "$u: no User=tcpunch and Group=tcpunch"
    fi
    grep -q '^DynamicUser' "$out" && fail "$u: DynamicUser= left"
    grep -q '/usr/local' "$out" && fail "$u: a /usr/local path left"
    grep -q '^ExecStart=/usr/bin/tcpunch-rendezvous ' "$out" || fail "$u: ExecStart is not /usr/bin's"
    # every other line as in deploy/: the hardening is the same
    diff <(grep -v -E '^(User|Group|RemoveIPC|DynamicUser|ExecStart|Documentation)=' "$src/$u") \
        <(grep -v -E '^(User|Group|RemoveIPC|DynamicUser|ExecStart|Documentation)=' "$out") >"$WORK/diff" ||
        fail "$u: lines other than the user, paths differ: $(head -5 "$WORK/diff")"
done
grep -q -x 'RemoveIPC=yes' "$WORK/tcpunch-rendezvous.service" ||
    fail "the dynamic user's implied RemoveIPC= is not said"

# refused, each for its reason: each would ship a unit that differs from what it says
refused() { # NAME REASON UNIT-TEXT
    printf '%b' "$3" >"$WORK/$1.service"
    if unit "$WORK/$1.service" "$WORK/$1.out"; then
        fail "$1.service was translated, should be refused ($2)"
    elif [ -e "$WORK/$1.out" ]; then
        fail "$1.service refused, but written"
    elif ! grep -q -F -- "$2" <<<"$(tr '\n' ' ' <"$WORK/cmake.log" | tr -s ' ')"; then
        fail "$1.service refused for another reason than \"$2\": $(cat "$WORK/cmake.log")"
    else
        pass "$1.service refused: $2"
    fi
}
refused nouser "no DynamicUser=yes nor User=tcpunch" \
    '[Service]\nExecStart=/usr/local/bin/tcpunch-rendezvous\n'
refused root "User=root: the package's units run as tcpunch" \
    '[Service]\nExecStart=/usr/local/bin/tcpunch-rendezvous\nUser=tcpunch\nUser=root\n'
refused group "Group=adm: the package's units run as tcpunch" \
    '[Service]\nExecStart=/usr/local/bin/tcpunch-rendezvous\nDynamicUser=yes\nGroup=adm\n'
refused sbin "a /usr/local/ path packaging/unit.cmake does not translate" \
    '[Service]\nExecStart=/usr/local/sbin/tcpunch-rendezvous\nDynamicUser=yes\n'
# a unit without [Service] (a .socket) passes through
printf '[Socket]\nListenStream=7000\n[Install]\nWantedBy=sockets.target\n' >"$WORK/t.socket"
if unit "$WORK/t.socket" "$WORK/t.socket.out" && cmp -s "$WORK/t.socket" "$WORK/t.socket.out"; then
    pass "a .socket unit passes through unchanged"
else
    fail "a .socket unit did not pass through: $(cat "$WORK/cmake.log")"
fi

# the maintainer scripts stop every unit the package ships that can be running: a socket left
# active after a remove keeps its port bound in PID 1, for a service that is gone
units=$(sed -n '/^set(TCPUNCH_UNITS/,/)/p' "$src/CMakeLists.txt" | grep -o -E '[A-Za-z0-9_@.-]+\.(socket|service)')
[ -n "$units" ] || fail "no TCPUNCH_UNITS in CMakeLists.txt"
for u in $units; do
    case $u in
    *@.service) want="${u%@.service}@\*.service" ;;
    *) want=$u ;;
    esac
    if grep -q -E -- "(^|[ '])$want([ ';]|$)" "$src/packaging/prerm"; then
        pass "prerm stops $u on remove"
    else
        fail "prerm does not stop $u on remove"
    fi
done

# every server unit drains on stop, and systemd waits for the drain: TimeoutStopSec above
# --drain (or the SIGKILL cuts the relayed sessions the drain is for), SIGTERM to the server only
for u in $units; do
    case $u in *.service) ;; *) continue ;; esac
    f=$(find "$src/deploy" -name "$u" | head -n 1)
    drain=$(sed -n '/^ExecStart=/,/^[^ ]/p' "$f" | grep -o -E -- '--drain [0-9]+' | grep -o -E '[0-9]+$')
    stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s\{0,1\}$/\1/p' "$f")
    if [ -z "$drain" ]; then
        fail "$u: no --drain SEC on its ExecStart (a stop would cut every relayed session)"
    elif [ -z "$stop" ] || [ "$stop" -le "$drain" ]; then
        fail "$u: TimeoutStopSec=${stop:-unset} is not above --drain $drain"
    elif ! grep -q -x 'KillMode=mixed' "$f"; then
        fail "$u: --drain $drain without KillMode=mixed"
    else
        pass "$u drains on stop (--drain $drain, TimeoutStopSec=${stop}s, KillMode=mixed)"
    fi
done

if [ "$FAILS" -gt 0 ]; then
    echo "$TEST_NAME: $FAILS failure(s)" >&2
    exit 1
fi
echo "$TEST_NAME: all passed"
