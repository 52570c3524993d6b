#!/usr/bin/env bash
# A resume for SOMEONE ELSE's session (docs/design/resume.md 4.8): a stranger registered with
# its own key sends connect{target: bob, resume: alice's root} while alice's session with bob
# is suspended. The server passes it on (it cannot know whose root it is); bob refuses the
# order before dialling (punch.peer and its key are not the session's peer's), and the real
# session resumes intact. The flood test's harness (test_resume_flood.sh) with one order.
RESUME_FLOOD_COUNT=1 source "$(dirname "$0")/test_resume_flood.sh" "$@"
