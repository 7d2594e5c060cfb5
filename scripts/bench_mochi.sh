#!/usr/bin/env bash
# Mochi-1 side-by-side benchmark on a GPU host: ditserve (served end to end through gRPC, MP4 out) and diffusers
# (eager and torch.compile transformer steps in one process, the tiled VAE decode), same GPU, same shapes
# (480x848x163 frames = 44,520 video tokens, random bf16 weights at the released configs), same run.
# Called like bench_gpu.sh (scripts/gpu_host.sh exports DITSERVE_BUILD_DIR, DITSERVE_PYTHON, PYTHONPATH, ...).
#
# Usage: scripts/bench_mochi.sh [model|ditserve|references|report|quick]...   (no argument: quick)
#   model       random-weight Mochi-1 checkpoint (weights made on the GPU, scripts/make_fullsize_mochi.py) in
#               $BENCH_SRC, exported bf16 to $BENCH_MODEL (skipped when model.json is there)
#   ditserve    start ditserve on 1 GPU (time to ready), a warm-up request ($BENCH_WARM_FRAMES frames, default the
#               benchmark's, $BENCH_WARM_STEPS steps, default 2) and one at the benchmark size with $BENCH_STEPS
#               steps: step time (denoise / steps), text /
#               decode / MP4 stage times, peak memory
#   references  scripts/bench/mochi_reference.py with $BENCH_REF_SITE first on PYTHONPATH (the newest diffusers):
#               eager and torch.compile step times, tiled VAE decode; and ditserve's exported transformer.pt stepped
#               in the same process (system ditserve-inprocess: the steady-state step, no first-call costs)
#   report      table + JSON records
#   quick       model, ditserve, references, report within BENCH_BUDGET_S (default 380 s from the start, for a
#               call killed at 480 s): every stage gets what is left and the references skip what would not fit
# Settings: BENCH_DEVICE (cuda|cpu: a dry run on the tiny model), BENCH_OUT (default $OUT or /tmp/mochi-bench),
#           BENCH_MODEL (default /dev/shm/mochi-bench-model), BENCH_SRC (default /dev/shm/mochi-bench-src),
#           BENCH_FRAMES/HEIGHT/WIDTH (default 163/480/848), BENCH_STEPS (default 3), BENCH_REF_SITE,
#           BENCH_REF_MODES (default "ditserve eager compile"), BENCH_PROFILE (1: one profiled step per mode, top
#           kernels in references.log), BENCH_BUDGET_S, BENCH_COMMIT, BENCH_STRICT (1: report fails
#           unless ditserve and a reference produced a step time; the CPU dry run), BENCH_FP8 (1: the opt-in FP8
#           export, `export_model.py --fp8`, default model dir /dev/shm/mochi-bench-fp8-model; the references stay
#           bf16 and ditserve-inprocess steps the FP8 transformer.pt), BENCH_FP8_ATTN (1: FP8 attention in
#           ditserve-inprocess (plus its error vs bf16 attention) and in the served group).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${BENCH_OUT:-${OUT:-/tmp/mochi-bench}}
FP8=${BENCH_FP8:-0}
NAME=mochi-1$([ "$FP8" = 1 ] && echo -fp8)
[ "$FP8" = 1 ] && SERVED_EXPORT_ARGS=--fp8
MODEL=${BENCH_MODEL:-/dev/shm/mochi-bench$([ "$FP8" = 1 ] && echo -fp8)-model}
SRC=${BENCH_SRC:-/dev/shm/mochi-bench-src}
FRAMES=${BENCH_FRAMES:-163}
HEIGHT=${BENCH_HEIGHT:-480}
WIDTH=${BENCH_WIDTH:-848}
BUDGET=${BENCH_BUDGET_S:-380}
BENCH_NAME=bench_mochi
. scripts/bench/served.sh
BENCH_WARM_FRAMES=${BENCH_WARM_FRAMES:-$FRAMES} BENCH_WARM_STEPS=${BENCH_WARM_STEPS:-2}  # warm-up at the timed shape (decode: seconds); Mochi needs >= 2 steps

do_model() { served_model mochi "$NAME" bfloat16 scripts/make_fullsize_mochi.py; }

do_ditserve() { served_run "$NAME" "$MODEL" "a red fox running through fresh snow, golden hour"; }

do_references() {
  [ -f "$SRC/model_index.json" ] || { log "no diffusers checkpoint at $SRC: run 'model' first"; return 1; }
  local budget; budget=$(left)
  [ "$budget" -gt 30 ] || { log "no budget left for the references"; return 0; }
  local extra=() lib=$BUILD/engine/libditserve_runtime.so
  # ditserve's served transformer.pt in process too (steady-state step, same weights and inputs)
  [ -f "$MODEL/model.json" ] && [ -f "$lib" ] && extra+=(--export "$MODEL" --engine-lib "$lib")
  [ "${BENCH_PROFILE:-0}" = 1 ] && extra+=(--profile)
  [ "${BENCH_FP8_ATTN:-0}" = 1 ] && [ -f "$lib" ] && extra+=(--fp8-attention)
  ref_python "$budget" scripts/bench/mochi_reference.py --src "$SRC" --frames "$FRAMES" \
    --height "$HEIGHT" --width "$WIDTH" --modes "${BENCH_REF_MODES:-ditserve eager compile}" \
    --budget-s $((budget - 10)) --device "$DEVICE" --vae "${extra[@]}" 2> "$OUT_DIR/references.log" \
    | "$PY" -c 'import json,sys
for line in sys.stdin:
    r = json.loads(line); r.update(model="mochi-1", gpus=1); print(json.dumps(r), flush=True)' >> "$RECORDS"
  local rc=${PIPESTATUS[0]}
  [ "$rc" = 0 ] || log "references exited with $rc (see $OUT_DIR/references.log)"
}

do_report() { served_report Mochi-1 "$NAME"; }

served_main references "$@"
