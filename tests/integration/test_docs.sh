#!/bin/bash
# The documentation agrees with the programs: every long option of each --help is in its man
# page, and in the bash completion; the man pages render without warnings; the completion
# loads and completes commands, options and peers; `cmake --install` puts them in place.
source "$(dirname "$0")/lib.sh" "$@"

SRC=$(cd "$TESTDIR/../.." && pwd)
BUILD=$(dirname "$TCPUNCH_BIN")

# long_options HELP_TEXT_FILE: the --options it names, one a line
long_options() {
    grep -oE -- '--[a-z][a-z0-9-]+' "$1" | sort -u
}

"$TCPUNCH_BIN" --help >"$WORK/help1"
"$RENDEZVOUS" --help >"$WORK/help8"
for pair in "help1 man/tcpunch.1" "help8 man/tcpunch-rendezvous.8"; do
    set -- $pair
    missing=
    for opt in $(long_options "$WORK/$1"); do
        # roff writes a - as \-
        grep -qF -- "$(sed 's/-/\\-/g' <<<"$opt")" "$SRC/$2" || missing="$missing $opt"
    done
    if [ -z "$missing" ]; then
        pass "$2 documents every long option of --help ($(long_options "$WORK/$1" | wc -l))"
    else
        fail "$2 lacks:$missing"
    fi
done
missing=
for cmd in listen connect chat send receive direct nat-check id config; do
    grep -qE "^\.B[IR]? \"?$(sed 's/-/\\\\-/g' <<<"$cmd")" "$SRC/man/tcpunch.1" ||
        missing="$missing $cmd"
done
check "tcpunch.1 describes every command${missing:+ (lacks$missing)}" test -z "$missing"
missing=
for opt in $(long_options "$WORK/help1"); do
    grep -qF -- "$opt" "$SRC/completion/tcpunch.bash" || missing="$missing $opt"
done
check "the completion knows every option of --help${missing:+ (lacks$missing)}" \
    test -z "$missing"
missing=
for code in 0 1 2 3 4 5 6 10 12 13; do
    grep -qE "^\.B $code\$" "$SRC/man/tcpunch.1" || missing="$missing $code"
done
check "tcpunch.1 lists every exit status${missing:+ (lacks$missing)}" test -z "$missing"

if command -v man >/dev/null && man -l /dev/null >/dev/null 2>&1; then
    for page in man/tcpunch.1 man/tcpunch-rendezvous.8; do
        man --warnings -l -Tutf8 "$SRC/$page" >/dev/null 2>"$WORK/man.err"
        check "$page renders without warnings" test ! -s "$WORK/man.err"
    done
else
    pass "man is not installed: rendering not checked"
fi

# completion: COMP_WORDS as bash sets them for "tcpunch <words...> <TAB>"
export TCPUNCH_HOME=$WORK/comphome
mkdir -p "$TCPUNCH_HOME"
printf '# comment\nbob-laptop AAAA\nbob-desktop BBBB\n' >"$TCPUNCH_HOME/known_peers"
complete_words() {
    bash --norc --noprofile -c '
        source "$1"; shift
        COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
        COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
        _tcpunch tcpunch "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
        printf "%s\n" "${COMPREPLY[@]}"' _ "$SRC/completion/tcpunch.bash" "$@"
}
check "the completion registers for tcpunch" bash --norc --noprofile -c \
    "source '$SRC/completion/tcpunch.bash' && complete -p tcpunch | grep -q _tcpunch"
out=$(complete_words tcpunch re | tr '\n' ' ')
check "it completes commands (\"$out\")" test "$out" = "receive "
out=$(complete_words tcpunch -s x:1 se | tr '\n' ' ')
check "it completes commands after options (\"$out\")" test "$out" = "send "
out=$(complete_words tcpunch --no | tr '\n' ' ')
check "it completes options (\"$out\")" test "$out" = "--no-relay --no-retry --no-report "
out=$(complete_words tcpunch send bob- | tr '\n' ' ')
check "it completes peers from known_peers (\"$out\")" test "$out" = "bob-desktop bob-laptop "
mkdir -p "$WORK/cwd/sub"
out=$(cd "$WORK/cwd" && complete_words tcpunch receive --dir s | tr '\n' ' ')
check "it completes directories for --dir (\"$out\")" test "$out" = "sub "
out=$(complete_words tcpunch --code-words "" | tr '\n' ' ')
check "it completes --code-words (\"$out\")" test "$out" = "2 3 "
: >"$WORK/cwd/bob-notes.txt"
out=$(cd "$WORK/cwd" && complete_words tcpunch send --code bob- | tr '\n' ' ')
check "send --code completes files, not peers (\"$out\")" test "$out" = "bob-notes.txt "
out=$(cd "$WORK/cwd" && complete_words tcpunch send bob- | sort | tr '\n' ' ')
check "send's first argument: peers and files (\"$out\")" \
    test "$out" = "bob-desktop bob-laptop bob-notes.txt "
unset TCPUNCH_HOME

# cmake --install puts the man pages and the completion where man and bash look
if [ -f "$BUILD/cmake_install.cmake" ] && command -v cmake >/dev/null; then
    cmake --install "$BUILD" --prefix "$WORK/inst" >"$WORK/install.log" 2>&1
    check_rc "cmake --install" 0 $?
    for f in bin/tcpunch share/man/man1/tcpunch.1.gz share/man/man8/tcpunch-rendezvous.8.gz \
        share/bash-completion/completions/tcpunch \
        share/bash-completion/completions/tcpunch-rendezvous share/doc/tcpunch/README.md; do
        check "installed $f" test -s "$WORK/inst/$f"
    done
    # gzip -9n at build time: the page itself, no name or timestamp in the header
    for m in man1/tcpunch.1 man8/tcpunch-rendezvous.8; do
        check "installed $m.gz is man/${m#*/}, compressed" \
            cmp -s <(gzip -dc "$WORK/inst/share/man/$m.gz") "$SRC/man/${m#*/}"
        check "$m.gz carries no timestamp" \
            test "$(od -An -tu4 -j4 -N4 "$WORK/inst/share/man/$m.gz" | tr -d ' ')" = 0
    done
    # the units are the package's (they need its tcpunch user): not in a plain install
    check "a plain install has no systemd units" test ! -e "$WORK/inst/lib/systemd"
else
    pass "no build tree next to the binary: install not checked"
fi
finish
