#!/bin/sh
# Sets up this machine (idempotent), then runs the main job on the embedded VM lab:
# lab up → fabric up → the default suite → report → teardown.
set -eu
cd "$(dirname "$0")"
./scripts/setup.sh
exec ./bin/rdma-failover.js smoke "$@"
