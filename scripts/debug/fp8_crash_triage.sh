#!/usr/bin/env bash
# One GPU-host call (~5 min with the build) that decides why FP8 attention crashed the Python benches
# (docs/benchmarks.md, "FP8 attention"): the C++ GPU test at the crashing shape, then the Python probe's cases
# (scripts/debug/fp8_attention_probe.py) with C backtraces (segv_backtrace.c) and cuDNN frontend/backend logs, and,
# if Python still crashes, the crashing call again with the C++ test's CUDA runtime and NVRTC preloaded (cuDNN
# compiles its FP8 kernel at run time with whichever libnvrtc.so.13 the process mapped first).
#   scripts/debug/fp8_crash_triage.sh        (on the host, $OUT set; logs and *.tail files under $OUT)
set -uo pipefail
cd "$(dirname "$0")/../.."
START=$SECONDS
OUT=${OUT:-/tmp/fp8-triage}
mkdir -p "$OUT/logs"
DITSERVE_BUILD_TARGETS="ditserve_runtime fp8_attention_gpu_test" scripts/gpu_host.sh setup build > "$OUT/build.log" 2>&1 ||
  { tail -60 "$OUT/build.log"; exit 1; }
echo "built at $((SECONDS - START)) s"
eval "$(scripts/gpu_host.sh env)"
cc -shared -fPIC -O1 -o /tmp/segv.so scripts/debug/segv_backtrace.c
LIB=$DITSERVE_BUILD_DIR/engine/libditserve_runtime.so TEST=$DITSERVE_BUILD_DIR/tests/fp8_attention_gpu_test
ldd "$LIB" | grep -E "cudnn|cudart|nvrtc|torch" > "$OUT/ldd_lib.txt"
ldd "$TEST" | grep -E "cudnn|cudart|nvrtc" > "$OUT/ldd_test.txt"
LD_PRELOAD=/tmp/segv.so timeout 90 "$TEST" 2>&1 | tee "$OUT/fp8_attention_gpu_test.log" | grep -E "OK|FAILED|PASSED|segv|fp8 vs|\.so"
for c in mid8448_nomask hy_sq_ne_sk hy_full_mask; do
  CUDNN_FRONTEND_LOG_INFO=1 CUDNN_FRONTEND_LOG_FILE=$OUT/logs/fe_$c.log CUDNN_LOGLEVEL_DBG=3 \
    CUDNN_LOGDEST_DBG=$OUT/logs/be_$c.log LD_PRELOAD=/tmp/segv.so \
    timeout 100 "$DITSERVE_HOST_PYTHON" scripts/debug/fp8_attention_probe.py "$LIB" $c 2>&1 | tee -a "$OUT/probe.log"
done
if ! grep -q "== hy_full_mask: rc 0" "$OUT/probe.log"; then
  PRE="/tmp/segv.so $(awk '/libnvrtc.so|libcudart.so/{print $3}' "$OUT/ldd_test.txt" | tr '\n' ' ')"
  echo "retry with LD_PRELOAD=$PRE" | tee -a "$OUT/probe.log"
  LD_PRELOAD="$PRE" timeout 100 "$DITSERVE_HOST_PYTHON" scripts/debug/fp8_attention_probe.py "$LIB" hy_full_mask 2>&1 |
    tee -a "$OUT/probe.log"
fi
for f in "$OUT"/logs/*.log; do tail -c 20000 "$f" > "$f.tail"; gzip -9 "$f"; done
find "$OUT/logs" -name "*.gz" -size +4M -delete  # the tails are what comes back
echo "done at $((SECONDS - START)) s"
