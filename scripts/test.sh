#!/usr/bin/env bash
# Installs (idempotent), builds, and runs the whole CPU test suite with ctest.
# Usage: scripts/test.sh [ctest args...]   e.g. scripts/test.sh -R config
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
scripts/build.sh build
# GPU tests (label gpu) run only on a GPU host: scripts/gpu_host.sh. The Docker smoke test (label docker) builds
# an image: ctest --test-dir build -L docker (or scripts/docker_smoke.sh).
ctest --test-dir build --output-on-failure --timeout 1200 -LE "gpu|docker" -j "${DITSERVE_TEST_JOBS:-2}" "$@"
