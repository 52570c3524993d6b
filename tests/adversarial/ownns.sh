# Sourced first by an adversarial test that runs in a network namespace of its own, so that
# its loopback traffic (SYN counters, listeners on fixed ports, nft rules) meets nothing else:
#   source "$(dirname "$0")/ownns.sh" "$@"            (NEED="nft" before it: more tools needed)
# Outside the namespace it re-executes the test under `unshare -n` (needs root, unshare, ip and
# the tools in NEED), or says "SKIPPED: why" and exits 77; inside, it brings lo up.
if [ -z "${TP_IN_NETNS:-}" ]; then
    _ownns_ok=1
    for _ownns_tool in unshare ip ${NEED:-}; do
        command -v "$_ownns_tool" >/dev/null || _ownns_ok=0
    done
    if [ "$(id -u)" -ne 0 ] || [ "$_ownns_ok" = 0 ] || ! unshare -n true 2>/dev/null; then
        echo "SKIPPED: needs root, unshare, ip${NEED:+ and $NEED} for a private network namespace" >&2
        exit 77
    fi
    TP_IN_NETNS=1 exec unshare -n bash "$0" "$@"
fi
ip link set lo up || { echo "SKIPPED: cannot bring lo up in the namespace" >&2; exit 77; }
