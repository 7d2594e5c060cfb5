#!/usr/bin/env bash
# Builds the coordinator-side targets and their tests with sanitizers and runs the tests:
#   build-asan/  ASan + UBSan (DITSERVE_SANITIZE=address)
#   build-tsan/  TSan (DITSERVE_SANITIZE=thread)
# Only torch-free targets: the coordinator, the worker process around the fake engine, ditctl, and the
# unit and fake-engine server tests (the libtorch model tests are far too heavy to instrument here).
#   scripts/sanitize.sh [asan|tsan|all]      (default all)
set -euo pipefail
cd "$(dirname "$0")/.."
WHICH=${1:-all}
TARGETS="ditserve ditctl fake_worker config_test validate_test request_decode_test runtime_dir_test
         coordinator_unit_test result_stream_test server_hardening_fake_test server_security_fake_test"
TESTS="config_test|validate_test|request_decode_test|runtime_dir_test|coordinator_unit_test|result_stream_test|server_hardening_fake_test|server_security_fake_test"
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
rc=0
run() {  # $1 build dir, $2 DITSERVE_SANITIZE value
  local dir=$1 san=$2
  if [ ! -f "$dir/build.ninja" ]; then
    cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDITSERVE_SANITIZE="$san" \
      -DDITSERVE_WITH_CUDA=OFF >/dev/null
  fi
  # shellcheck disable=SC2086
  cmake --build "$dir" --target $TARGETS -j "${DITSERVE_JOBS:-2}"
  # The server tests start ditserve and fake_worker: the sanitizer reports of those processes go to their
  # logs and make them exit non-zero (exitcode), which the tests see.
  ctest --test-dir "$dir" --output-on-failure --timeout 900 -R "^($TESTS)\$" || rc=1
}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=23}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Libraries built without TSan (gRPC, protobuf) are not instrumented: ignore what happens inside them.
# Their header-inlined code is instrumented, though: scripts/tsan.supp lists the false positives that gives.
export TSAN_OPTIONS=${TSAN_OPTIONS:-ignore_noninstrumented_modules=1:halt_on_error=1:exitcode=66:suppressions=$PWD/scripts/tsan.supp}
case $WHICH in
  asan) run build-asan address ;;
  tsan) run build-tsan thread ;;
  all) run build-asan address; run build-tsan thread ;;
  *) echo "usage: scripts/sanitize.sh [asan|tsan|all]" >&2; exit 2 ;;
esac
[ $rc -eq 0 ] && echo "sanitize.sh: clean" || echo "sanitize.sh: FAILED" >&2
exit $rc
