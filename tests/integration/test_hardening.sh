#!/usr/bin/env bash
# The installed binaries carry the hardening of the default build (CMakeLists.txt,
# TCPUNCH_HARDEN): `cmake --install` into a temporary DESTDIR, then readelf on what landed in
# bin/. Checked for both tcpunch and tcpunch-rendezvous:
#   PIE (ELF type DYN, FLAGS_1 PIE), BIND_NOW, a GNU_RELRO segment (full RELRO = both), a
#   non-executable stack, __stack_chk_fail imported (-fstack-protector-strong), FORTIFY's
#   __*_chk functions imported (-D_FORTIFY_SOURCE=3), and the CET markings (IBT, SHSTK in
#   .note.gnu.property, -fcf-protection).
# args: BUILD_DIR SANITIZED(0|1) HARDEN(0|1) [BUILD_TYPE]
# A sanitizer build has no FORTIFY (it conflicts with ASan), nor has a Debug build (-O0): that
# check is then skipped, saying so.
# The linker keeps the CET note only when every object has it, the C library's start files
# too: where those lack it (Debian 12's glibc), no program linked there can carry it, and our
# own objects are checked for it instead, saying so.
set -uo pipefail

build=${1:?usage: test_hardening.sh BUILD_DIR SANITIZED HARDEN}
sanitized=${2:-0}
harden=${3:-1}
build_type=${4:-}

if ! command -v readelf >/dev/null 2>&1; then
    echo "SKIPPED: readelf (binutils) is not installed" >&2
    exit 77
fi
if [ "$harden" != 1 ]; then
    echo "SKIPPED: configured with -DTCPUNCH_HARDEN=OFF" >&2
    exit 77
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
bad() {
    echo "FAIL: $*" >&2
    fail=1
}

if ! DESTDIR="$tmp/root" cmake --install "$build" --prefix /usr >"$tmp/install.log" 2>&1; then
    cat "$tmp/install.log" >&2
    echo "FAIL: cmake --install $build failed" >&2
    exit 1
fi

# CET: can anything linked here carry the note? (the start files decide, see above)
crt=$(${CC:-cc} -print-file-name=Scrt1.o 2>/dev/null || true)
crt_cet=1
if [ -f "$crt" ] && ! readelf -nW "$crt" 2>/dev/null | grep -q 'IBT, SHSTK'; then
    crt_cet=0
fi

check_binary() {
    local name=$1 f=$tmp/root/usr/bin/$1
    local hdr dyn seg syms notes
    if [ ! -x "$f" ]; then
        bad "$name was not installed into bin/"
        return
    fi
    hdr=$(readelf -hW "$f")
    dyn=$(readelf -dW "$f")
    seg=$(readelf -lW "$f")
    syms=$(readelf -sW --dyn-syms "$f")
    notes=$(readelf -nW "$f")

    grep -Eq 'Type:[[:space:]]+DYN' <<<"$hdr" || bad "$name: ELF type is not DYN (no PIE)"
    grep -Eq 'FLAGS_1.*Flags:.*PIE' <<<"$dyn" || bad "$name: FLAGS_1 lacks PIE"
    grep -Eq '\(FLAGS\).*BIND_NOW|FLAGS_1.*Flags:.* NOW' <<<"$dyn" ||
        bad "$name: no BIND_NOW (-z now)"
    grep -q 'GNU_RELRO' <<<"$seg" || bad "$name: no GNU_RELRO segment (-z relro)"
    if ! grep -q 'GNU_STACK' <<<"$seg"; then
        bad "$name: no GNU_STACK header (the stack would be executable)"
    elif grep -E 'GNU_STACK' <<<"$seg" | grep -Eq 'RWE'; then
        bad "$name: the stack is executable"
    fi
    grep -q 'UND __stack_chk_fail' <<<"$syms" ||
        bad "$name: __stack_chk_fail is not imported (no -fstack-protector-strong)"
    if [ "$sanitized" = 1 ]; then
        echo "NOTE: $name: FORTIFY check skipped: sanitizer build (FORTIFY conflicts with ASan)" >&2
    elif [ "$build_type" = Debug ]; then
        echo "NOTE: $name: FORTIFY check skipped: Debug build (FORTIFY needs optimisation)" >&2
    else
        local chk
        chk=$(grep -Eo 'UND __[a-z0-9_]+_chk\b' <<<"$syms" | grep -v __stack_chk | awk '{print $2}' |
            sort -u | tr '\n' ' ')
        if [ -z "$chk" ]; then
            bad "$name: no fortified __*_chk function imported (no -D_FORTIFY_SOURCE)"
        else
            echo "$name: fortified: $chk"
        fi
    fi
    if grep -q 'x86 feature: IBT, SHSTK' <<<"$notes"; then
        echo "$name: CET: IBT, SHSTK"
    elif [ "$(uname -m)" != x86_64 ]; then
        echo "NOTE: $name: CET check skipped: not x86-64" >&2
    elif [ "$crt_cet" = 1 ]; then
        bad "$name: .note.gnu.property lacks IBT/SHSTK (no -fcf-protection)"
    else
        echo "NOTE: $name: no CET note: the C library's start files ($crt) carry no IBT/SHSTK" \
            "property, so the linker drops it from every program; checking our objects" >&2
    fi
}

for b in tcpunch tcpunch-rendezvous; do
    check_binary "$b"
done

# Our own objects carry the CET property (always checked on x86-64: -fcf-protection is ours to
# give, whatever the start files do)
if [ "$(uname -m)" = x86_64 ]; then
    objs=$(find "$build/CMakeFiles/tcpunch.dir" "$build/CMakeFiles/tcpunch-rendezvous.dir" \
        "$build/CMakeFiles/tpcommon.dir" "$build/CMakeFiles/tpproto.dir" -name '*.o' 2>/dev/null)
    n=0
    for o in $objs; do
        n=$((n + 1))
        readelf -nW "$o" | grep -q 'x86 feature: IBT, SHSTK' || bad "$o: no IBT/SHSTK property"
    done
    [ "$n" -gt 0 ] || bad "no object files found under $build/CMakeFiles"
    echo "object files checked for IBT, SHSTK: $n"
fi

if [ "$fail" = 0 ]; then
    echo "PASS: hardening of the installed binaries"
fi
exit "$fail"
