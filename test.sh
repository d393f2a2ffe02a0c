#!/bin/sh
# Sets up this machine (idempotent) and runs the tests: typecheck, lint, unit, transport (real sshd),
# VM lab and suites. Ends with "N passed, N failed, N skipped".
set -eu
cd "$(dirname "$0")"
./scripts/setup.sh
exec npm test --silent
