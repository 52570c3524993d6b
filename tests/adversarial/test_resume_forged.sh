#!/usr/bin/env bash
# A FORGED resume (docs/design/resume.md 4.8): the attacker has everything but RS, so it makes
# the MAC up (random bytes); the responder must drop that connection and resume on the next,
# answered with a valid line. The replay test's harness (test_resume_replay.sh), another attack.
RESUME_ATTACK=forged source "$(dirname "$0")/test_resume_replay.sh" "$@"
