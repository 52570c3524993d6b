# shellcheck shell=bash disable=SC2034  # MAKER_PID, CODE: for the sourcing test
# Helpers for the wormhole-code tests (docs/design/wormhole.md section 6), sourced after lib.sh
# (integration and adversarial tests alike). A maker is `send FILE` (no peer) or
# `listen --code`; it prints "Code: N-word-word" on stderr; a claimer types the code.

WH_WORDS=$TESTDIR/../../proto/words.txt
[ -f "$WH_WORDS" ] || WH_WORDS=$(cd "$TESTDIR/../.." && pwd)/proto/words.txt

# wh_code_of FILE: the code a maker printed in FILE (empty when none yet): its "Code: N-w-w"
# line, or with --json its event {"event":"code","code":"N-w-w",...}
wh_code_of() {
    grep -aoE '(Code: |"event":"code","code":")[1-9][0-9]{0,5}(-[a-z]{3,8}){2,3}' "$1" 2>/dev/null |
        head -n 1 | sed -E 's/^(Code: |"event":"code","code":")//'
}

wh_has_code() { [ -n "$(wh_code_of "$1")" ]; }

# wh_maker TAG SECONDS ARGS...: starts `tcpunch ARGS` in the background (stdin $WORK/TAG.in if it
# exists, else /dev/null; stdout TAG.out, stderr TAG.err) and waits (10 s at most) for its code:
# sets MAKER_PID and CODE; dies when no code comes.
wh_maker() {
    local tag=$1 secs=$2 in=/dev/null
    shift 2
    [ -e "$WORK/$tag.in" ] && in=$WORK/$tag.in
    spawn "$secs" "$TCPUNCH" "$@" <"$in" >"$WORK/$tag.out" 2>"$WORK/$tag.err"
    MAKER_PID=$!
    if ! wait_until 10 wh_has_code "$WORK/$tag.err"; then
        kill "$MAKER_PID" 2>/dev/null
        die "the maker ($*) printed no code ('Code: N-word-word' or a code event) on stderr within 10 s"
    fi
    CODE=$(wh_code_of "$WORK/$tag.err")
}

# wh_channel CODE / wh_words CODE: the parts of a code
wh_channel() { echo "${1%%-*}"; }
wh_words() { echo "${1#*-}"; }

# wh_other_words CODE: as many words as CODE has, from the list, none of them CODE's (a guess
# that missed); hyphen-joined
wh_other_words() {
    local n w out=() have
    have=" $(wh_words "$1" | tr '-' ' ') "
    n=$(wh_words "$1" | tr '-' '\n' | wc -l)
    while read -r w; do
        case $w in '#'* | '') continue ;; esac
        [[ "$have" == *" $w "* ]] && continue
        out+=("$w")
        [ ${#out[@]} -ge "$n" ] && break
    done < <(grep -v '^#' "$WH_WORDS" | shuf -n 16)
    local IFS=-
    echo "${out[*]}"
}

# wh_wait PID SECONDS: the exit status of PID (a spawned process), waiting at most SECONDS;
# 124 (and the process killed) when it is still running then
wh_wait() {
    local pid=$1 limit=$(($2 * 20)) i
    for ((i = 0; i < limit; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        return 124
    fi
    wait "$pid"
}

# wh_said FILE REGEX DESCRIPTION: FILE (a peer's stderr) has a line matching REGEX (grep -iE)
wh_said() {
    if grep -qiE -- "$2" "$1"; then
        pass "$3: $(grep -iE -- "$2" "$1" | head -n 1 | cut -c1-160)"
    else
        fail "$3: no line matching /$2/ in $(basename "$1"): $(tail -n 3 "$1" | tr '\n' '|' | cut -c1-300)"
    fi
}

# wh_not_connected FILE WHO: a peer's stderr has no path line ("connected to PEER: direct" or
# ": relay", the --json event "connected") nor a byte of a transfer: it never got a link
WH_LINK_RE='connected to [^ ]+: (direct|relay)|"event":"connected"'
wh_not_connected() {
    if grep -qE "$WH_LINK_RE" "$1"; then
        fail "$2 connected: $(grep -E "$WH_LINK_RE" "$1" | head -n 1)"
    else
        pass "$2 never connected"
    fi
}
