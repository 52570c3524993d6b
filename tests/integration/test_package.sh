#!/usr/bin/env bash
# The .deb (packaging/package.cmake): built by cpack from the already built tree into a
# temporary directory, its contents and control fields checked, installed with `dpkg -i`, the
# installed programs run from /usr/bin, the installed server started as the tcpunch user with
# a peer registering to it, then `dpkg --purge` and everything checked gone.
# args: BUILD_DIR [SANITIZED(0|1)]
# Needs root, dpkg-deb and cpack; it refuses (SKIPPED, 77) wherever a tcpunch of any origin is
# already installed (the package, the binaries in /usr/bin, the tcpunch user, /var/lib/tcpunch),
# since the purge at the end would remove it. A trap purges the package on any failure.
# shellcheck disable=SC2317,SC2016 # helpers called through check and the trap; bash -c bodies
set -uo pipefail

build=${1:?usage: test_package.sh BUILD_DIR}
build=$(cd "$build" && pwd)
sanitized=${2:-0}
TEST_NAME=test_package
FAILS=0

skip() {
    echo "SKIPPED: $*" >&2
    exit 77
}
[ "$sanitized" = 0 ] || skip "a sanitizer build: its binaries are not packaged"
[ "$(id -u)" -eq 0 ] || skip "needs root (dpkg -i)"
for t in dpkg dpkg-deb cpack setpriv; do
    command -v "$t" >/dev/null 2>&1 || skip "$t is not installed"
done
[ -f "$build/CPackConfig.cmake" ] || skip "$build/CPackConfig.cmake missing (not configured with packaging)"
if dpkg -s tcpunch >/dev/null 2>&1; then
    skip "a tcpunch package is installed on this machine; not replacing it"
fi
for f in /usr/bin/tcpunch /usr/bin/tcpunch-rendezvous /usr/lib/systemd/system/tcpunch-rendezvous.service \
    /lib/systemd/system/tcpunch-rendezvous.service /var/lib/tcpunch; do
    if [ -e "$f" ] || [ -L "$f" ]; then
        skip "$f exists (a tcpunch installed by hand?); the purge would remove it"
    fi
done
if getent passwd tcpunch >/dev/null || getent group tcpunch >/dev/null; then
    skip "a tcpunch user or group exists already; the purge would remove it"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tcpunch-$TEST_NAME.XXXXXX")
INSTALLED=0
PIDS=()

cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null
    done
    for p in "${PIDS[@]}"; do
        wait "$p" 2>/dev/null
    done
    if [ "$INSTALLED" = 1 ]; then
        echo "cleanup: dpkg --purge tcpunch" >&2
        dpkg --purge tcpunch >"$WORK/purge-trap.log" 2>&1 || cat "$WORK/purge-trap.log" >&2
    fi
    if [ "$FAILS" -eq 0 ] && [ -z "${KEEP_WORK:-}" ]; then
        rm -rf "$WORK"
    else
        echo "(work files kept in $WORK)" >&2
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
    echo "FAIL [$TEST_NAME]: $*" >&2
    FAILS=$((FAILS + 1))
}
die() {
    fail "$@"
    exit 1
}
pass() {
    echo "ok   [$TEST_NAME]: $*"
}
# check DESCRIPTION COMMAND...
check() {
    local what=$1
    shift
    if "$@"; then
        pass "$what"
    else
        fail "$what"
    fi
}
wait_until() { # SECONDS COMMAND...: polls every 50 ms
    local limit=$(($1 * 20)) i
    shift
    for ((i = 0; i < limit; i++)); do
        "$@" && return 0
        sleep 0.05
    done
    return 1
}
free_port() {
    local i p
    for i in $(seq 1 100); do
        p=$((20000 + RANDOM % 40001))
        if [ -z "$(ss -Htan "( sport = :$p or dport = :$p )" 2>/dev/null)" ]; then
            echo "$p"
            return 0
        fi
    done
    return 1
}
listening() {
    [ -n "$(ss -Htln "sport = :$1" 2>/dev/null)" ]
}

# --- build: cpack from the built tree, building nothing (packaging/cpack-options.cmake) ---
if ! TCPUNCH_CPACK_PREBUILT=1 cpack --config "$build/CPackConfig.cmake" -B "$WORK/pkg" \
    >"$WORK/cpack.log" 2>&1; then
    cat "$WORK/cpack.log" >&2
    die "cpack failed"
fi
if grep -q 'preinstall' "$WORK/cpack.log"; then
    fail "cpack ran the preinstall target (a build beside the other tests)"
fi
debs=("$WORK"/pkg/tcpunch_*.deb)
[ -f "${debs[0]}" ] || die "cpack made no tcpunch_*.deb: $(ls "$WORK/pkg")"
deb=${debs[0]}
version=$("$build/tcpunch" --version | awk '{print $2}')
arch=$(dpkg --print-architecture)
check "package named tcpunch_${version}_$arch.deb" [ "$(basename "$deb")" = "tcpunch_${version}_$arch.deb" ]

# --- contents ---
dpkg-deb -c "$deb" >"$WORK/contents" || die "dpkg-deb -c failed"
has() { # PATH [MODE-PREFIX]
    grep -q -E "^${2:-[-]}[^ ]* +root/root .* \./${1#/}\$" "$WORK/contents"
}
for f in /usr/bin/tcpunch /usr/bin/tcpunch-rendezvous; do
    check "contains $f, executable, owned by root" has "$f" '-rwxr-xr-x'
done
for f in /usr/share/man/man1/tcpunch.1.gz /usr/share/man/man8/tcpunch-rendezvous.8.gz \
    /usr/share/bash-completion/completions/tcpunch /usr/share/bash-completion/completions/tcpunch-rendezvous \
    /usr/lib/systemd/system/tcpunch-rendezvous.service /usr/lib/systemd/system/tcpunch-rendezvous@.service \
    /usr/lib/systemd/system/tcpunch-rendezvous.socket /usr/lib/systemd/system/tcpunch-rendezvous-probe.socket \
    /usr/share/doc/tcpunch/README.md /usr/share/doc/tcpunch/PROTOCOL.md /usr/share/doc/tcpunch/VPS.md \
    /usr/share/doc/tcpunch/CLUSTER.md /usr/share/doc/tcpunch/METRICS.md /usr/share/doc/tcpunch/copyright; do
    check "contains $f (0644)" has "$f" '-rw-r--r--'
done
if grep -E -q '/tests?/|/fuzz|/bench|rlinkdrv|\.a$|/usr/local' "$WORK/contents"; then
    fail "the package holds test, fuzz or bench files, or /usr/local paths: $(grep -E '/tests?/|/fuzz|/bench|rlinkdrv|\.a$|/usr/local' "$WORK/contents" | head -3)"
else
    pass "no tests, fuzzers, benchmarks, static libraries or /usr/local paths"
fi

dpkg-deb -I "$deb" >"$WORK/info" || die "dpkg-deb -I failed"
field() {
    dpkg-deb -f "$deb" "$1"
}
check "Package: tcpunch" [ "$(field Package)" = tcpunch ]
check "Version: $version (the project's)" [ "$(field Version)" = "$version" ]
check "Architecture: $arch" [ "$(field Architecture)" = "$arch" ]
check "Section: net" [ "$(field Section)" = net ]
check "a Maintainer" [ -n "$(field Maintainer)" ]
check "a short and a long Description" [ "$(field Description | wc -l)" -ge 3 ]
deps=$(field Depends)
for lib in libc6 libuv1 libjansson4 libsodium23 libhiredis; do
    check "Depends names $lib ($deps)" grep -q "$lib" <<<"$deps"
done
for s in postinst prerm postrm; do
    check "control has $s, executable" grep -q -E "^ +[0-9]+ bytes, +[0-9]+ lines +\* +$s " "$WORK/info"
done

# the ELF files: stripped (policy), and the hardening of the build kept: the same markings as
# the binary in the build tree (test_hardening.sh checks that one against the build's flags)
mkdir -p "$WORK/x"
dpkg-deb -x "$deb" "$WORK/x" || die "dpkg-deb -x failed"
hardening() { # ELF: the hardening markings it carries, one word each
    # (readelf's output kept first: grep -q ending a pipe early fails it under pipefail)
    local h d l sy n
    h=$(readelf -hW "$1") d=$(readelf -dW "$1") l=$(readelf -lW "$1")
    sy=$(readelf --dyn-syms -W "$1") n=$(readelf -nW "$1")
    grep -q 'Type: *DYN' <<<"$h" && echo pie
    grep -q -E 'BIND_NOW|FLAGS_1.*NOW' <<<"$d" && echo bind-now
    grep -q GNU_RELRO <<<"$l" && echo relro
    grep -q -E 'GNU_STACK.* RW ' <<<"$l" && echo noexecstack
    grep -q __stack_chk_fail <<<"$sy" && echo stack-protector
    grep -q -E '__[a-z]+_chk' <<<"$sy" && echo fortify
    grep -q 'IBT, SHSTK' <<<"$n" && echo cet
}
if command -v readelf >/dev/null 2>&1; then
    for b in tcpunch tcpunch-rendezvous; do
        f=$WORK/x/usr/bin/$b
        check "$b is stripped (no .symtab, no .debug_*)" \
            bash -c "! readelf -SW '$f' | grep -q -E '\\.symtab|\\.debug_'"
        want=$(hardening "$build/$b" | tr '\n' ' ')
        got=$(hardening "$f" | tr '\n' ' ')
        check "$b keeps the build's hardening ($got)" [ "$got" = "$want" ]
        check "$b is PIE" grep -q pie <<<"$got"
    done
fi
unit=$WORK/x/usr/lib/systemd/system/tcpunch-rendezvous.service
has_line() { # FILE LINE: LINE is one of FILE's lines; LINE ending in '*': a line starting so
    local l
    while IFS= read -r l; do
        if [[ $2 == *'*' ]]; then
            [[ $l == "${2%'*'}"* ]] && return 0
        else
            [ "$l" = "$2" ] && return 0
        fi
    done <"$1"
    return 1
}
for line in 'User=tcpunch' 'Group=tcpunch' 'ExecStart=/usr/bin/tcpunch-rendezvous *' 'NoNewPrivileges=yes' \
    'ProtectSystem=strict' 'CapabilityBoundingSet=' 'StateDirectory=tcpunch' 'RemoveIPC=yes'; do
    check "the packaged unit has $line" has_line "$unit" "$line"
done
check "the packaged unit has no DynamicUser=" bash -c "! grep -q '^DynamicUser' '$unit'"

# --- install ---
INSTALLED=1
if ! dpkg -i "$deb" >"$WORK/install.log" 2>&1; then
    cat "$WORK/install.log" >&2
    die "dpkg -i failed"
fi
pass "dpkg -i $(basename "$deb")"
check "dpkg knows tcpunch $version as installed" \
    [ "$(dpkg-query -W -f='${db:Status-Status} ${Version}' tcpunch)" = "installed $version" ]
check "postinst says the service is not enabled" grep -q 'not enabled' "$WORK/install.log"
if [ -d /run/systemd/system ]; then
    check "the service was not enabled" bash -c '! systemctl is-enabled --quiet tcpunch-rendezvous.service'
    check "the service was not started" bash -c '! systemctl is-active --quiet tcpunch-rendezvous.service'
fi

out=$(/usr/bin/tcpunch --version 2>&1)
check "/usr/bin/tcpunch --version: '$out'" grep -q -x "tcpunch $version (protocol [0-9]*)" <<<"$out"
/usr/bin/tcpunch-rendezvous --help >"$WORK/help.out" 2>&1
rc=$?
check "/usr/bin/tcpunch-rendezvous --help exits 0 (got $rc)" [ "$rc" -eq 0 ]
check "/usr/bin/tcpunch-rendezvous --help prints its usage" grep -q '^Usage: tcpunch-rendezvous' "$WORK/help.out"

# the man pages: through man-db when there is one and dpkg did not leave them out
# (path-exclude in /etc/dpkg/dpkg.cfg.d, as minimal container images have)
if [ -f /usr/share/man/man1/tcpunch.1.gz ]; then
    if command -v man >/dev/null 2>&1; then
        check "man -w tcpunch finds the page" bash -c '[ "$(man -w tcpunch)" = /usr/share/man/man1/tcpunch.1.gz ]'
        check "man -w tcpunch-rendezvous finds the page" \
            bash -c '[ "$(man -w 8 tcpunch-rendezvous)" = /usr/share/man/man8/tcpunch-rendezvous.8.gz ]'
    else
        check "tcpunch.1.gz is a gzip file" gzip -t /usr/share/man/man1/tcpunch.1.gz
    fi
elif grep -r -q -s '^path-exclude.*/usr/share/man' /etc/dpkg/dpkg.cfg.d; then
    echo "note [$TEST_NAME]: dpkg excludes /usr/share/man here (dpkg.cfg.d); man pages not checked" >&2
else
    fail "/usr/share/man/man1/tcpunch.1.gz was not installed"
fi
check "the completion is installed" [ -f /usr/share/bash-completion/completions/tcpunch-rendezvous ]
check "the copyright file is installed" [ -f /usr/share/doc/tcpunch/copyright ]

# the user: a system account, no login, home the state directory
pw=$(getent passwd tcpunch)
if [ -z "$pw" ]; then
    die "postinst created no tcpunch user"
fi
IFS=: read -r _ _ pw_uid pw_gid _ pw_home pw_shell <<<"$pw"
check "the tcpunch user has a nologin shell ($pw_shell)" bash -c "[[ '$pw_shell' == */nologin || '$pw_shell' == /bin/false ]]"
check "the tcpunch user is a system user (uid $pw_uid < 1000)" [ "$pw_uid" -lt 1000 ]
check "the tcpunch group is its primary group" [ "$(getent group tcpunch | cut -d: -f3)" = "$pw_gid" ]
check "its home is /var/lib/tcpunch" [ "$pw_home" = /var/lib/tcpunch ]
check "/var/lib/tcpunch is 0700 tcpunch:tcpunch" \
    [ "$(stat -c '%a %U %G' /var/lib/tcpunch 2>/dev/null)" = "700 tcpunch tcpunch" ]
# idempotent: configure again (as dpkg-reconfigure would) succeeds and changes nothing
if sh /var/lib/dpkg/info/tcpunch.postinst configure "$version" >"$WORK/postinst2.log" 2>&1; then
    pass "postinst configure runs a second time"
else
    fail "postinst configure a second time: $(cat "$WORK/postinst2.log")"
fi
check "still one tcpunch user, same uid" [ "$(getent passwd tcpunch | cut -d: -f3)" = "$pw_uid" ]

# an upgrade's path (prerm upgrade, postinst configure OLD-VERSION): the same .deb again
if dpkg -i "$deb" >"$WORK/reinstall.log" 2>&1; then
    pass "dpkg -i the same package again (the upgrade's scripts)"
else
    fail "dpkg -i a second time: $(cat "$WORK/reinstall.log")"
fi
check "the upgrade says nothing of enabling (only a first install does)" \
    bash -c "! grep -q 'not enabled' '$WORK/reinstall.log'"

# the units parse
if command -v systemd-analyze >/dev/null 2>&1; then
    # the template needs an instance to be verified
    cp /usr/lib/systemd/system/tcpunch-rendezvous@.service "$WORK/tcpunch-rendezvous@check.service"
    for u in /usr/lib/systemd/system/tcpunch-rendezvous.service "$WORK/tcpunch-rendezvous@check.service"; do
        if systemd-analyze verify "$u" >"$WORK/verify.log" 2>&1; then
            pass "systemd-analyze verify $(basename "$u")"
        else
            fail "systemd-analyze verify $(basename "$u"): $(cat "$WORK/verify.log")"
        fi
    done
else
    for l in '^\[Service\]' '^ExecStart=/usr/bin/tcpunch-rendezvous ' '^User=tcpunch$' '^\[Install\]'; do
        check "the installed unit has $l" grep -q -E "$l" /usr/lib/systemd/system/tcpunch-rendezvous.service
    done
fi

# --- the installed server as the tcpunch user, a peer registering ---
port=$(free_port) || die "no free port"
timeout -k 2 60 setpriv --reuid tcpunch --regid tcpunch --clear-groups --no-new-privs \
    /usr/bin/tcpunch-rendezvous -v -l "127.0.0.1:$port" --id-db /var/lib/tcpunch/ids \
    >"$WORK/server.out" 2>"$WORK/server.log" &
srv=$!
PIDS+=("$srv")
wait_until 5 listening "$port" || die "the installed server does not listen: $(tail -5 "$WORK/server.log")"
check "the server runs as the tcpunch user" \
    [ "$(ps -o user= -p "$(pgrep -P "$srv" | head -n 1)")" = tcpunch ]
id=pkg-$$-$RANDOM
mkdir -p "$WORK/home"
TCPUNCH_HOME=$WORK/home timeout -k 2 30 /usr/bin/tcpunch -s "127.0.0.1:$port" -i "$id" listen \
    </dev/null >"$WORK/peer.out" 2>"$WORK/peer.err" &
peer=$!
PIDS+=("$peer")
if wait_until 10 grep -q -F "register $id" "$WORK/server.log"; then
    pass "a peer registered to the installed server ($id)"
else
    fail "the installed server never logged the registration of $id: $(tail -5 "$WORK/server.log")"
fi
# --id-db in the state directory, written by the tcpunch user
check "the id database was written into /var/lib/tcpunch as tcpunch" \
    wait_until 5 bash -c "[ \"\$(find /var/lib/tcpunch -mindepth 1 -user tcpunch | head -n 1)\" ]"
kill "$peer" "$srv" 2>/dev/null
wait "$peer" 2>/dev/null
wait "$srv" 2>/dev/null
PIDS=()

# --- remove, then purge ---
if dpkg -r tcpunch >"$WORK/remove.log" 2>&1; then
    pass "dpkg -r tcpunch"
else
    die "dpkg -r failed: $(cat "$WORK/remove.log")"
fi
check "dpkg -r removed /usr/bin/tcpunch-rendezvous" [ ! -e /usr/bin/tcpunch-rendezvous ]
check "dpkg -r removed the unit" [ ! -e /usr/lib/systemd/system/tcpunch-rendezvous.service ]
check "dpkg -r keeps the tcpunch user (a purge removes it)" getent passwd tcpunch
check "dpkg -r keeps /var/lib/tcpunch (the --id-db)" [ -d /var/lib/tcpunch ]
if dpkg --purge tcpunch >"$WORK/purge.log" 2>&1; then
    INSTALLED=0
    pass "dpkg --purge tcpunch"
else
    die "dpkg --purge failed: $(cat "$WORK/purge.log")"
fi
check "dpkg no longer knows tcpunch" bash -c '! dpkg -s tcpunch >/dev/null 2>&1'
for f in /usr/bin/tcpunch /usr/bin/tcpunch-rendezvous /usr/lib/systemd/system/tcpunch-rendezvous.service \
    /usr/lib/systemd/system/tcpunch-rendezvous@.service /usr/lib/systemd/system/tcpunch-rendezvous.socket \
    /usr/share/man/man1/tcpunch.1.gz /usr/share/doc/tcpunch /var/lib/tcpunch; do
    check "$f is gone" bash -c "[ ! -e '$f' ]"
done
check "the tcpunch user is gone" bash -c '! getent passwd tcpunch >/dev/null'
check "the tcpunch group is gone" bash -c '! getent group tcpunch >/dev/null'

if [ "$FAILS" -gt 0 ]; then
    echo "$TEST_NAME: $FAILS failure(s)" >&2
    exit 1
fi
echo "$TEST_NAME: all passed"
exit 0
