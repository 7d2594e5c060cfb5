#!/usr/bin/env bash
# Fuzzes request decoding + validation and config parsing with libFuzzer (clang; ASan + UBSan) for a
# fixed budget each, starting from the seed corpus in fuzz/corpus/ (the cases of issue 19). Builds only the
# two harnesses and the coordinator library into build-fuzz/. Exit non-zero on any crash, leak, hang or
# sanitizer report; the reproducer is left in build-fuzz/fuzz-out/.
#   scripts/fuzz.sh [SECONDS_PER_TARGET]     (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-60}
BUILD=${DITSERVE_FUZZ_BUILD_DIR:-build-fuzz}
command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ not found (apt-get install clang)" >&2; exit 2; }
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
if [ ! -f "$BUILD/build.ninja" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDITSERVE_FUZZ=ON \
    -DDITSERVE_BUILD_TESTS=OFF -DDITSERVE_WITH_CUDA=OFF -DDITSERVE_SANITIZE=address >/dev/null
fi
cmake --build "$BUILD" --target fuzz_request fuzz_config -j "${DITSERVE_JOBS:-2}"
OUTDIR=$BUILD/fuzz-out
mkdir -p "$OUTDIR"
rc=0
for t in request config; do
  work=$OUTDIR/$t-corpus
  mkdir -p "$work"
  cp -n fuzz/corpus/$t/* "$work/" 2>/dev/null || true
  echo "== fuzz_$t: ${SECONDS_PER_TARGET}s"
  # -timeout: one input taking > 5 s is a hang; -rss_limit_mb: unbounded allocation fails the run.
  if ! (cd "$OUTDIR" && "../fuzz/fuzz_$t" -max_total_time="$SECONDS_PER_TARGET" -timeout=5 -rss_limit_mb=1024 \
         -max_len=65536 -print_final_stats=1 "$t-corpus" 2>&1 | tail -n 25); then
    rc=1
  fi
  if ls "$OUTDIR"/crash-* "$OUTDIR"/leak-* "$OUTDIR"/timeout-* "$OUTDIR"/oom-* >/dev/null 2>&1; then rc=1; fi
done
[ $rc -eq 0 ] && echo "fuzz.sh: no crash, leak, hang or unbounded allocation" || echo "fuzz.sh: FAILED, see $OUTDIR" >&2
exit $rc
