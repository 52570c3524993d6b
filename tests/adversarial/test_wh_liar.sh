#!/usr/bin/env bash
# A lying server cannot make a code exchange succeed with the wrong party (issue 18; docs/
# design/wormhole.md 2.2, 6.3). whliar.py is a rendezvous with a mailbox that relays the code-*
# messages between real tcpunch peers (`send FILE` makes the code, `receive CODE` types it) and
# lies (--lie): it knows no words. In every lie both sides fail (exit 12: the PAKE's tags do not
# check), neither connects, no file arrives, and the liar never sees a connect (a claimer that
# believed the exchange):
#   swap             two concurrent exchanges crossed (each claimer talks to the other maker)
#   reflect          the maker's own post comes back as the answer; the claimer's own tag as
#                    the confirm
#   reflect-relabel  the same with the reflected AD relabelled B (only the share check refuses)
#   ad-a / ad-b      the maker's / the claimer's AD replaced with the server's id and key
#   confirm-random   a confirm that is not the maker's (random)
#   confirm-reflect  the claimer's own tag sent back as the maker's confirm
#   split            a server that learned the code runs one PAKE with each side (each with
#                    the other's real AD: both confirm the real party), then introduces them:
#                    the two runs' keys differ, and each signature covers a proof of its
#                    signer's binding key (PROTOCOL.md 8.2), so both sides refuse the other at
#                    the handshake: exit 12 with the words "someone who knew the code is in
#                    the middle", never "connected", no file created; the same with a pipe
#                    (listen --code / connect --code): neither side reads a byte of stdin
#   mitm             the exchange is honest, then the introduction puts an impostor (mallory's
#                    key, the other's id) before each side: both refuse it, neither connects
#   malformed        broken code-opened, code-claimed and code-answer lines (sizes, base64,
#                    shares that are no element or a second encoding, channel and ttl out of
#                    range, members missing): each peer fails at once and cleanly (no crash,
#                    no hang) and sends nothing that continues the exchange; an unknown
#                    member is ignored (PROTOCOL.md 3: the control: that peer goes on)
#   silent / silent-confirm  the server never answers the claim / never passes the confirm
#                    on: each side ends by its own deadline (the claimer's 30 s: exit 2)
# The positive control (--lie honest): the same peers through the same fake server exchange the
# file, so each failure is the lie's doing.
source "$(dirname "$0")/../integration/lib.sh" "$@"
source "$TESTDIR/wh.sh"
ADV=$(cd "$(dirname "$0")" && pwd)
command -v python3 >/dev/null || { echo "SKIPPED: python3 is needed" >&2; exit 77; }
head -c 65536 /dev/urandom >"$WORK/f1.bin"
head -c 65536 /dev/urandom >"$WORK/f2.bin"

# liar MODE: a fresh whliar.py on a free port; sets LPORT, LLOG (split: it reads the words
# from $WORK/words when a claim comes)
liar() {
    LPORT=$(free_port) || die "no free port"
    LLOG=$WORK/liar-$1.log
    : >"$LLOG"
    spawn 100 python3 "$ADV/whliar.py" "$LPORT" "$LLOG" --lie "$1" --lifetime 90 \
        --words-file "$WORK/words" \
        >"$WORK/liar-$1.out" 2>&1
    LIAR_PID=$!
    wait_until 5 listening "$LPORT" || die "whliar.py does not listen"
}

declare -A CODES # tag -> the code its maker printed
# exchange MODE TAG FILE: a maker (send FILE) on the liar, then a receiver of its code, both in
# the background; sets MK_PID, RV_PID (outputs $WORK/TAG-m.err, TAG-r.err, dir $WORK/TAG-dst)
exchange_start() {
    local tag=$2 f=$3
    mkdir -p "$WORK/$tag-dst"
    wh_maker "$tag-m" 70 -s "127.0.0.1:$LPORT" -i "$(uid "$tag-mk")" -t 3 send "$f"
    MK_PID=$MAKER_PID
    CODES[$tag]=$CODE
}
exchange_claim() {
    local tag=$1 code=${CODES[$1]}
    spawn 70 "$TCPUNCH" -s "127.0.0.1:$LPORT" -i "$(uid "$tag-rv")" -t 3 receive "$code" \
        --dir "$WORK/$tag-dst" >/dev/null 2>"$WORK/$tag-r.err"
    RV_PID=$!
}

# both_fail MODE TAG MK_PID RV_PID WANT [LINKED]: both exit WANT (12; any: not 0), neither
# connects (unless LINKED: a path line may come before the session fails), nothing arrives
both_fail() {
    local mode=$1 tag=$2 mk=$3 rv=$4 want=$5 linked=${6:-} rcm rcr
    wh_wait "$rv" 50
    rcr=$?
    wh_wait "$mk" 50
    rcm=$?
    if [ "$want" = any ]; then
        check "$mode: the maker fails (exit $rcm)" test "$rcm" -ne 0 -a "$rcm" -ne 124
        check "$mode: the receiver fails (exit $rcr)" test "$rcr" -ne 0 -a "$rcr" -ne 124
    else
        check_rc "$mode: the maker" "$want" "$rcm"
        check_rc "$mode: the receiver" "$want" "$rcr"
    fi
    if [ -z "$linked" ]; then
        wh_not_connected "$WORK/$tag-m.err" "$mode: the maker"
        wh_not_connected "$WORK/$tag-r.err" "$mode: the receiver"
    fi
    check "$mode: nothing arrived" test -z "$(ls -A "$WORK/$tag-dst")"
}

no_connect() { # MODE: the liar saw no connect (nobody believed the exchange)
    if grep -q '^connect ' "$LLOG"; then
        fail "$1: a claimer believed the exchange and asked for the maker: $(grep '^connect ' "$LLOG" | head -n 1)"
    else
        pass "$1: no claimer asked for the maker"
    fi
}

lied() { # MODE PATTERN: the liar's log shows the lie (it happened, so the failure is its doing)
    if grep -q -- "$2" "$LLOG"; then pass "$1: the liar lied ($(grep -c -- "$2" "$LLOG")x '$2')"
    else fail "$1: the liar never lied ('$2' not in its log: $(tr '\n' '|' <"$LLOG" | cut -c1-300))"; fi
}

# ---- the positive control
liar honest
exchange_start honest h "$WORK/f1.bin"
exchange_claim h
wh_wait "$RV_PID" 40
check_rc "honest: the receiver through the fake mailbox" 0 $?
wh_wait "$MK_PID" 40
check_rc "honest: the maker through the fake mailbox" 0 $?
same_file "honest: the file" "$WORK/f1.bin" "$WORK/h-dst/f1.bin"
check "honest: the claimer asked for the maker" grep -q '^connect ' "$LLOG"

# ---- swap: two exchanges at once, crossed
liar swap
exchange_start swap s1 "$WORK/f1.bin"
MK1=$MK_PID
exchange_start swap s2 "$WORK/f2.bin"
MK2=$MK_PID
exchange_claim s1
RV1=$RV_PID
exchange_claim s2
RV2=$RV_PID
both_fail "swap (exchange 1)" s1 "$MK1" "$RV1" 12
both_fail "swap (exchange 2)" s2 "$MK2" "$RV2" 12
lied swap "lie swap"
no_connect swap

# ---- one exchange per lie
for mode in reflect reflect-relabel ad-a ad-b confirm-random confirm-reflect; do
    liar "$mode"
    exchange_start "$mode" x "$WORK/f1.bin"
    case $mode in reflect*) wait_until 5 grep -q 'lie reflect' "$LLOG" ;; esac
    exchange_claim x
    both_fail "$mode" x "$MK_PID" "$RV_PID" 12
    case $mode in
        reflect*) lied "$mode" "lie reflect" ;;
        *) lied "$mode" "lie $mode" ;;
    esac
    no_connect "$mode"
    mv "$WORK/x-m.err" "$WORK/$mode-m.err"
    mv "$WORK/x-r.err" "$WORK/$mode-r.err"
    kill "$LIAR_PID" 2>/dev/null
done
wh_said "$WORK/ad-a-m.err" "wrong code" "ad-a: the maker calls it a wrong code"
wh_said "$WORK/confirm-random-r.err" "wrong" "confirm-random: the receiver calls it wrong"

# ---- split: a server that knows the code runs two PAKEs; the signatures' proof of the binding
# key stops it at the handshake, on both sides (exit 12), before anything is connected or written
liar split
exchange_start split sp "$WORK/f1.bin"
wh_words "${CODES[sp]}" >"$WORK/words"
exchange_claim sp
both_fail split sp "$MK_PID" "$RV_PID" 12
check "split: both sides confirmed the liar's runs (each believes the real other party)" \
    grep -q 'lie split: both sides confirmed' "$LLOG"
check "split: the claimer asked for the maker (the introduction happened)" grep -q '^connect ' "$LLOG"
wh_said "$WORK/sp-m.err" "someone who knew the code is in the middle" \
    "split: the maker says someone who knew the code is in the middle"
wh_said "$WORK/sp-r.err" "someone who knew the code is in the middle" \
    "split: the receiver says someone who knew the code is in the middle"
check "split: the receiver created nothing (not even a partial file)" \
    test -z "$(find "$WORK/sp-dst" -mindepth 1 -print -quit)"
for f in m r; do
    if grep -qiE 'authentication|data failed' "$WORK/sp-$f.err"; then
        fail "split ($f): a record got as far as failing authentication: $(grep -iE 'authentication|data failed' "$WORK/sp-$f.err" | head -n 1)"
    else
        pass "split ($f): no record was read (refused at the handshake)"
    fi
done

# ---- split with a pipe (listen --code / connect --code): the same refusal, and neither side
# read a byte of its input or wrote a byte of output. Each side's stdin is a file descriptor this
# shell holds too, so its offset afterwards says how much the side read.
head -c 4096 /dev/urandom >"$WORK/pm.in"
head -c 4096 /dev/urandom >"$WORK/pr.in"
exec 7<"$WORK/pm.in" 8<"$WORK/pr.in"
liar split
spawn 70 "$TCPUNCH" -s "127.0.0.1:$LPORT" -i "$(uid pipe-mk)" -t 3 listen --code <&7 \
    >"$WORK/pm.out" 2>"$WORK/pm.err"
PMK=$!
wait_until 10 wh_has_code "$WORK/pm.err" || die "listen --code printed no code"
CODE=$(wh_code_of "$WORK/pm.err")
wh_words "$CODE" >"$WORK/words"
spawn 70 "$TCPUNCH" -s "127.0.0.1:$LPORT" -i "$(uid pipe-rv)" -t 3 connect --code "$CODE" <&8 \
    >"$WORK/pr.out" 2>"$WORK/pr.err"
PRV=$!
wh_wait "$PRV" 50
check_rc "split (pipe): connect --code" 12 $?
wh_wait "$PMK" 50
check_rc "split (pipe): listen --code" 12 $?
check "split (pipe): the liar ran both exchanges" grep -q 'lie split: both sides confirmed' "$LLOG"
wh_not_connected "$WORK/pm.err" "split (pipe): listen --code"
wh_not_connected "$WORK/pr.err" "split (pipe): connect --code"
wh_said "$WORK/pm.err" "someone who knew the code is in the middle" \
    "split (pipe): listen --code says someone who knew the code is in the middle"
wh_said "$WORK/pr.err" "someone who knew the code is in the middle" \
    "split (pipe): connect --code says someone who knew the code is in the middle"
for fd in 7 8; do
    pos=$(awk '/^pos:/ {print $2}' "/proc/$$/fdinfo/$fd")
    check "split (pipe): fd $fd: no byte of stdin read (offset ${pos:-?})" test "${pos:-x}" = 0
done
check "split (pipe): nothing written to stdout" test ! -s "$WORK/pm.out" -a ! -s "$WORK/pr.out"
exec 7<&- 8<&-
kill "$LIAR_PID" 2>/dev/null

# ---- malformed lines from the server: each peer named for what it gets (whliar.py malformed)
liar malformed
declare -A MF_PID
mf_spawn() { # KIND VARIANT: KIND mo (maker, broken opened), ma (maker, broken answer), mc (claimer)
    local id="$1-$2-$$"
    if [ "$1" = mc ]; then
        mkdir -p "$WORK/mf-dst"
        spawn 40 "$TCPUNCH" -s "127.0.0.1:$LPORT" -i "$id" -t 3 receive 7-acorn-apple \
            --dir "$WORK/mf-dst" >/dev/null 2>"$WORK/mf-$1-$2.err"
    else
        spawn 40 "$TCPUNCH" -s "127.0.0.1:$LPORT" -i "$id" -t 3 send "$WORK/f1.bin" \
            >/dev/null 2>"$WORK/mf-$1-$2.err"
    fi
    MF_PID[$1-$2]=$!
}
MO="chan0 chanbig chanstr sid15 sid17 ttl0 nottl extra"
SHARED="share31 share33 sharejunk shareid shareff sharetop noshare ad0 ad257 adjunk chanstr extra chanother"
MC="$SHARED sid15 sid17"
MA="$SHARED tag63 tag65"
for v in $MO; do mf_spawn mo "$v"; done
for v in $MC; do mf_spawn mc "$v"; done
for v in $MA; do mf_spawn ma "$v"; done
sleep 4
mf_end() { # KIND VARIANT: the peer's end: its exit status (124: still running, then ended)
    wh_wait "${MF_PID[$1-$2]}" 8
}
mf_bad=0
for kind in mo mc ma; do
    case $kind in mo) vs=$MO ;; mc) vs=$MC ;; *) vs=$MA ;; esac
    for v in $vs; do
        rc=0
        mf_end "$kind" "$v" || rc=$?
        id="$kind-$v-$$"
        last=$(grep -E 'error' "$WORK/mf-$kind-$v.err" | tail -n 1 | cut -c1-150)
        case $kind-$v in
            mo-extra)   # ignored member: the maker prints its code and waits (killed here)
                if [ "$rc" = 124 ] && wh_has_code "$WORK/mf-$kind-$v.err"; then
                    pass "malformed $kind-$v: an unknown member is ignored (the maker made its code and waited)"
                else fail "malformed $kind-$v: exit $rc, code '$(wh_code_of "$WORK/mf-$kind-$v.err")': $last"; mf_bad=1; fi
                continue ;;
            mc-extra)   # ignored member: the claimer answers the (fake) post
                if grep -q "^answer from $id" "$LLOG"; then
                    pass "malformed $kind-$v: an unknown member is ignored (the claimer answered the post)"
                else fail "malformed $kind-$v: the claimer did not answer a post with an unknown member (exit $rc: $last)"; mf_bad=1; fi
                continue ;;
            *-chanother) # a line for another channel: refused or ignored, never taken
                if [ "$rc" -ge 128 ] && [ "$rc" != 124 ]; then fail "malformed $kind-$v: died (exit $rc)"; mf_bad=1; fi ;;
            *)
                if [ "$rc" = 0 ] || [ "$rc" = 124 ] || [ "$rc" -ge 128 ]; then
                    fail "malformed $kind-$v: exit $rc (want a clean failure within 12 s): $last"; mf_bad=1
                fi ;;
        esac
        if grep -qE "^(answer|confirm) from $id" "$LLOG"; then
            fail "malformed $kind-$v: the peer went on with the exchange: $(grep -E "^(answer|confirm) from $id" "$LLOG")"; mf_bad=1
        fi
        if grep -qE "$WH_LINK_RE" "$WORK/mf-$kind-$v.err"; then fail "malformed $kind-$v: connected"; mf_bad=1; fi
        echo "   malformed $kind-$v: exit $rc: $last"
    done
done
[ "$mf_bad" = 0 ] && pass "malformed: every broken line ended its peer cleanly ($(wc -w <<<"$MO $MC $MA") peers)"
check "malformed: the liar sent each broken line" \
    test "$(grep -c '^lie malformed' "$LLOG")" -ge $(($(wc -w <<<"$MO $MC $MA") - 1))

# ---- silent server: bounded waits (both liars at once: each side waits its own 30 s or so)
liar silent
exchange_start silent q "$WORK/f1.bin"
SQ_MK=$MK_PID
exchange_claim q
SQ_RV=$RV_PID
t0=$(date +%s)
liar silent-confirm
exchange_start silent-confirm sc "$WORK/f1.bin"
exchange_claim sc
wh_wait "$SQ_RV" 45
rc=$?
took=$(($(date +%s) - t0))
check_rc "silent: the claimer whose claim is never answered (after $took s)" 2 "$rc"
check "silent: it gave up by its 30 s deadline ($took s)" test "$took" -le 40
kill "$SQ_MK" 2>/dev/null
both_fail silent-confirm sc "$MK_PID" "$RV_PID" any
lied silent-confirm "lie silent-confirm"
no_connect silent-confirm

# ---- mitm at the introduction: impostors with the server's key
liar mitm
exchange_start mitm mm "$WORK/f1.bin"
exchange_claim mm
both_fail mitm mm "$MK_PID" "$RV_PID" any
# the impostors' own ends (a refused dial is retried for 5 s, a silent peer waited 5 s)
impostors_done() { [ "$(grep -c '^impostor as' "$LLOG")" -ge 2 ]; }
wait_until 15 impostors_done || fail "mitm: the impostors did not finish within 15 s"
check "mitm: the PAKE itself went through (the claimer asked for the maker)" grep -q '^connect ' "$LLOG"
check "mitm: an impostor was put before the maker" grep -q 'impostor as .* to the maker' "$LLOG"
check "mitm: an impostor was put before the receiver" grep -q 'impostor as .* to the claimer' "$LLOG"
if grep -q 'impostor.*confirmed' "$LLOG"; then
    fail "mitm: a side accepted the impostor: $(grep 'impostor.*confirmed' "$LLOG")"
else
    pass "mitm: neither side accepted an impostor: $(grep 'impostor as' "$LLOG" | tr '\n' '|')"
fi

finish
