#!/bin/bash
# Early bytes at the relay (Phase 7, issue 12). PROTOCOL.md promises that the server keeps at
# most 64 KiB of what a side sends before `relayed`; the code kept up to about 256 KiB per
# waiting side (a 128 KiB bound checked after a read of up to 128 KiB). Attack: a joiner sends
# more than 64 KiB before its partner joins. Defence: it is refused (relay-refused) as soon as
# it passes 64 KiB, and nothing beyond the bound is kept; 60 KiB still arrive intact.
source "$(dirname "$0")/../integration/lib.sh" "$@"

start_server
timeout -k 2 60 python3 "$(dirname "$0")/quota.py" early 127.0.0.1 "$SERVER_PORT"
check_rc "quota.py early (defaults)" 0 $?
check "the refusal is logged" grep -q -E "refused .*relay-refused: more than 65536 bytes" "$SERVER_LOG"
check "the server survived" server_alive
finish
