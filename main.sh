#!/bin/sh
# Sets up this machine (idempotent), then runs the main job: the certification suites on the
# embedded VM lab (booted for the run, taken down after it), with reports in reports/<run-id>/.
# Arguments go to `rdma-failover run` (e.g. --quick, a suite name, --grep UL-NFS-01).
set -eu
cd "$(dirname "$0")"
./scripts/setup.sh
exec ./bin/rdma-failover.js run "$@"
