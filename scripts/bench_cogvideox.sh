#!/usr/bin/env bash
# CogVideoX side-by-side benchmark on a GPU host: ditserve served end to end through gRPC (MP4 out: step, text,
# decode, MP4 stage times, peak memory) and the transformer step of ditserve's exported module vs diffusers eager
# vs diffusers + torch.compile in one process (scripts/bench/cogvideox_bench.py), same GPU, same run, random
# weights at the released configs. Called like bench_mochi.sh (after `eval "$(scripts/gpu_host.sh env)"`).
#
# Usage: scripts/bench_cogvideox.sh [model|ditserve|step|report|quick]...   (no argument: quick)
#   model     random-weight checkpoint of BENCH_VARIANT (scripts/make_fullsize_cogvideox.py, weights made on the
#             GPU) in $BENCH_SRC, exported to $BENCH_MODEL (skipped when model.json is there)
#   ditserve  start ditserve on 1 GPU (time to ready), a warm-up request at the benchmark size ($BENCH_WARM_STEPS
#             steps, default 1) and the timed one with $BENCH_STEPS steps
#   step      cogvideox_bench.py at the variant's shape: ditserve's exported transformer.pt / diffusers eager /
#             diffusers compile step times and peak memory, both from the checkpoint (BENCH_REF_SITE first on its
#             path: the newest diffusers)
#   report    table + JSON records
#   quick     model, ditserve, step, report within BENCH_BUDGET_S (default 480 s from the start)
# Settings: BENCH_VARIANT (5b: 480x720x49, default; 1.5: 768x1360x81; 2b: 480x720x49 fp16), BENCH_OUT (default
#           $OUT or /tmp/cogvideox-bench), BENCH_MODEL (default /dev/shm/cogvideox-<variant>-model), BENCH_SRC
#           (default /dev/shm/cogvideox-<variant>-src), BENCH_FRAMES/HEIGHT/WIDTH, BENCH_STEPS (default 3),
#           BENCH_DEVICE (cuda|cpu: a dry run on the tiny model), BENCH_REF_SITE, BENCH_BUDGET_S, BENCH_COMMIT,
#           BENCH_FP8 (1: the opt-in FP8 export, model in /dev/shm/cogvideox-<variant>-fp8-model),
#           BENCH_STRICT (1: report fails unless ditserve and a reference produced a step time), BENCH_PROFILE
#           (1: each system's step once more under torch.profiler, the top kernels in step.log and the JSON),
#           BENCH_FP8_ATTN (1: FP8 attention in ditserve's in-process step, plus its error vs bf16 attention, and
#           in the served group).
set -uo pipefail
cd "$(dirname "$0")/.."
VARIANT=${BENCH_VARIANT:-5b}
OUT_DIR=${BENCH_OUT:-${OUT:-/tmp/cogvideox-bench}}
FP8=${BENCH_FP8:-0}
MODEL=${BENCH_MODEL:-/dev/shm/cogvideox-$VARIANT$([ "$FP8" = 1 ] && echo -fp8)-model}
[ "$FP8" = 1 ] && SERVED_EXPORT_ARGS=--fp8
SRC=${BENCH_SRC:-/dev/shm/cogvideox-$VARIANT-src}
case $VARIANT in
  1.5) FRAMES=${BENCH_FRAMES:-81}; HEIGHT=${BENCH_HEIGHT:-768}; WIDTH=${BENCH_WIDTH:-1360} ;;
  2b|5b) FRAMES=${BENCH_FRAMES:-49}; HEIGHT=${BENCH_HEIGHT:-480}; WIDTH=${BENCH_WIDTH:-720} ;;
  *) echo "BENCH_VARIANT must be 2b, 5b or 1.5, got $VARIANT" >&2; exit 2 ;;
esac
BUDGET=${BENCH_BUDGET_S:-480}
NAME=cogvideox-$VARIANT$([ "$FP8" = 1 ] && echo -fp8)
BENCH_NAME=bench_cogvideox
. scripts/bench/served.sh
BENCH_WARM_FRAMES=${BENCH_WARM_FRAMES:-$FRAMES} BENCH_WARM_STEPS=${BENCH_WARM_STEPS:-1}  # warm-up at the timed shape: its decode is seconds

do_model() {
  served_model cogvideox "$NAME" "$([ "$VARIANT" = 2b ] && echo float16 || echo bfloat16)" \
    scripts/make_fullsize_cogvideox.py --variant "$VARIANT"
}

do_ditserve() { served_run "$NAME" "$MODEL" "a panda playing a guitar by a lake at sunrise, cinematic"; }

do_step() {
  local budget; budget=$(left)
  [ "$budget" -gt 60 ] || { log "no budget left for the step benchmark"; return 0; }
  local extra=()
  local lib=$BUILD/engine/libditserve_runtime.so
  [ -f "$lib" ] && extra+=(--engine-lib "$lib")
  if [ "$DEVICE" = cpu ]; then extra+=(--device cpu --tiny); else extra+=(--configs "$VARIANT"); fi
  # The served artifacts when both are there (the same weights in both systems), else random in-process weights.
  [ -f "$SRC/model_index.json" ] && [ -f "$MODEL/model.json" ] && extra+=(--checkpoint "$SRC" --export "$MODEL")
  [ "${BENCH_PROFILE:-0}" = 1 ] && extra+=(--profile)
  [ "${BENCH_FP8_ATTN:-0}" = 1 ] && [ -f "$lib" ] && extra+=(--fp8-attention)
  ref_python "$budget" scripts/bench/cogvideox_bench.py --quick --budget-s $((budget - 10)) \
    --out "$OUT_DIR/step" "${extra[@]}" > "$OUT_DIR/step.log" 2>&1
  local rc=$?
  [ "$rc" = 0 ] || { log "cogvideox_bench.py exited with $rc"; tail -5 "$OUT_DIR/step.log" >&2; }
  [ -f "$OUT_DIR/step/cogvideox_bench.json" ] || return 0
  "$PY" - "$OUT_DIR/step/cogvideox_bench.json" "$RECORDS" "$NAME" <<'PYEOF'
import json, sys
src, records, name = sys.argv[1:4]
d = json.load(open(src))
with open(records, "a") as f:
    for r in d["records"]:
        if r.get("metric") == "step_ms":
            f.write(json.dumps({"system": f"{r['system']}-inprocess" if r["system"] == "ditserve" else
                                f"{r['system']} {d['diffusers']}", "model": name, "gpus": 1, "metric": "step_ms",
                                "value": r["value"], "unit": "ms",
                                "note": f"transformer call, CFG batch of 2, peak {r.get('peak_gib')} GiB"}) + "\n")
        elif r.get("metric") in ("ditserve_vs_eager_rel_err", "fp8_attention_rel_err_vs_bf16", "error", "diagnosis"):
            f.write(json.dumps({"system": r.get("system", "ditserve"), "model": name, "gpus": 1,
                                "metric": r["metric"], "value": r["value"], "unit": "",
                                "note": r.get("note", "")}) + "\n")
PYEOF
}

do_report() { served_report "CogVideoX $VARIANT" "$NAME"; }

served_main step "$@"
