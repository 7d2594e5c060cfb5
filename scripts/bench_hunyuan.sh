#!/usr/bin/env bash
# HunyuanVideo benchmarks on one GPU, side by side in one run: ditserve vs diffusers eager vs diffusers +
# torch.compile (the python's diffusers: on the GPU host, the bundle's newest release), random full-size bf16
# weights made on the device (scripts/bench/hunyuan_step.py --random: nothing downloaded, nothing on disk).
#
# Usage: scripts/bench_hunyuan.sh [quick|decode|model|served|report]...      (no argument: quick report)
#   quick   transformer step at 544x960, 61 frames (32,640 video tokens + 256 text tokens): ditserve, diffusers
#           eager, diffusers compile (skipped with a note when the budget cannot fit its compile); peak memory
#   decode  720x1280, 129 frames: the tiled VAE decode (ditserve's decoder vs diffusers', same tiles) and the
#           ditserve transformer step at 118,800 video tokens, with peak memory
#   model   random-weight checkpoint at the released configs (scripts/make_fullsize_hunyuan_video.py, weights made
#           on the GPU, ~43 GB) in $BENCH_SRC, exported bf16 to $BENCH_MODEL (each skipped when already there)
#   served  ditserve served end to end on 1 GPU (scripts/bench/served.sh): time to ready, a warm-up request
#           (5 frames) and one at BENCH_FRAMES x BENCH_HEIGHT x BENCH_WIDTH (default 129 x 720 x 1280) with
#           BENCH_STEPS steps (default 3) -> MP4: step, text / decode / MP4 stage times, peak memory per stage
#   report  a table of every JSON record under $BENCH_OUT
# Settings: BENCH_OUT (default $OUT, else /tmp/ditserve-bench-hunyuan), BENCH_QUICK_BUDGET_S (default 330: the
#           python stops before what would overrun it), BENCH_DECODE_BUDGET_S (default 420), BENCH_RUNS (2),
#           BENCH_DEVICE (cuda | cpu: a dry run at the tiny config, without torch.compile),
#           DITSERVE_BUILD_DIR (engine/libditserve_runtime.so: the engine's ops), DITSERVE_PYTHON, BENCH_REF_SITE
#           (a directory with the newest diffusers, e.g. the 0.42.1 wheel unzipped: put first on the path),
#           BENCH_SRC (default /dev/shm/hunyuan-video-src), BENCH_MODEL (default $TMPDIR/hunyuan-video-model),
#           BENCH_SERVED_BUDGET_S (default 560: model + served stop starting what would overrun it), BENCH_FP8 (1:
#           ditserve with the opt-in FP8 export: e4m3 block GEMMs in quick / decode's step, `export_model.py --fp8`
#           for model / served, default model dir $TMPDIR/hunyuan-video-fp8-model; the references stay bf16),
#           BENCH_FP8_ATTN (1: ditserve with FP8 attention, in quick's step (which then also times the step with bf16
#           attention and reports the output's error between the two) and the served group's fp8_attention).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${BENCH_OUT:-${OUT:-/tmp/ditserve-bench-hunyuan}}
RUNS=${BENCH_RUNS:-2}
mkdir -p "$OUT"
# The checkpoint, export and served request (scripts/bench/served.sh; it defines log, left and record).
BUDGET=${BENCH_SERVED_BUDGET_S:-560} BENCH_NAME=bench_hunyuan OUT_DIR=$OUT
# The export on disk: the 43 GB source checkpoint fills /dev/shm.
FP8=${BENCH_FP8:-0}
MODEL=${BENCH_MODEL:-${TMPDIR:-/tmp}/hunyuan-video$([ "$FP8" = 1 ] && echo -fp8)-model}
SRC=${BENCH_SRC:-/dev/shm/hunyuan-video-src}
NAME=hunyuan-video$([ "$FP8" = 1 ] && echo -fp8)
[ "$FP8" = 1 ] && SERVED_EXPORT_ARGS=--fp8
FRAMES=${BENCH_FRAMES:-129} HEIGHT=${BENCH_HEIGHT:-720} WIDTH=${BENCH_WIDTH:-1280}
BENCH_WARM_FRAMES=${BENCH_WARM_FRAMES:-5}
. scripts/bench/served.sh

step() {  # step NAME ARGS...: hunyuan_step.py with the engine's ops, JSON to $OUT/NAME.json
  local name=$1; shift
  local lib=$BUILD/engine/libditserve_runtime.so extra=()
  if [ -f "$lib" ]; then extra+=(--engine-lib "$lib"); else log "no $lib: ditserve's ops run as their Python references"; fi
  if [ "$DEVICE" = cpu ]; then extra+=(--device cpu --tiny); fi
  if [ "$FP8" = 1 ]; then extra+=(--fp8); fi
  if [ "${BENCH_FP8_ATTN:-0}" = 1 ] && [ -f "$lib" ]; then extra+=(--fp8-attention); fi
  ref_python 0 scripts/bench/hunyuan_step.py --random --runs "$RUNS" \
    "${extra[@]}" --json "$OUT/$name.json" "$@"
}

do_quick() {
  if [ "$DEVICE" = cpu ]; then
    step hunyuan-step-quick --width 64 --height 48 --frames 9 --systems ditserve,eager --budget-s 600
  else
    step hunyuan-step-544x960x61 --width 960 --height 544 --frames 61 --budget-s "${BENCH_QUICK_BUDGET_S:-330}"
  fi
}

do_decode() {
  if [ "$DEVICE" = cpu ]; then
    step hunyuan-decode --decode --width 80 --height 64 --frames 17 --systems ditserve,eager --budget-s 600 &&
      step hunyuan-step-big --width 80 --height 64 --frames 17 --systems ditserve --budget-s 600
  else
    local budget=${BENCH_DECODE_BUDGET_S:-420}
    step hunyuan-decode-720x1280x129 --decode --width 1280 --height 720 --frames 129 --systems ditserve,eager \
      --budget-s $((budget * 2 / 3)) &&
      step hunyuan-step-720x1280x129 --width 1280 --height 720 --frames 129 --systems ditserve --runs 1 \
        --budget-s $((budget / 3))
  fi
}

do_model() { served_model hunyuan_video "$NAME" bfloat16 scripts/make_fullsize_hunyuan_video.py; }

do_served() { served_run "$NAME" "$MODEL" "a cat walks on the grass, realistic style"; }

do_report() {
  [ -f "$RECORDS" ] && { served_report HunyuanVideo "$NAME" || return 1; }
  "$PY" - "$OUT" <<'EOF'
import glob, json, os, sys
rows = []
for path in sorted(glob.glob(os.path.join(sys.argv[1], "hunyuan-*.json"))):
    r = json.load(open(path))
    shape = f"{r['width']}x{r['height']}x{r['frames']}"
    for system in ("ditserve", "ditserve-bf16-attention", "diffusers-eager", "diffusers-compile", "vae-ditserve",
                   "vae-diffusers-eager"):
        m = r.get(system)
        if m is None:
            continue
        if "skipped" in m:
            rows.append((os.path.basename(path), system, shape, "skipped: " + m["skipped"], "", ""))
            continue
        t = m.get("step_s", m.get("decode_s"))
        what = "s/step" if "step_s" in m else "s/decode"
        extra = f"compile {m['compile_s']:.0f}s" if "compile_s" in m else ""
        if m.get("weights") == "fp8_e4m3":
            extra = "fp8 e4m3 block GEMMs"
        if m.get("attention") == "fp8_e4m3":
            extra += f"{', ' if extra else ''}fp8 attention (step rel. err vs bf16 attention " \
                     f"{m.get('fp8_attention_rel_err_vs_bf16', float('nan')):.2e})"
        if "max_abs_diff_vs_diffusers" in m:
            extra = f"max |diff| vs diffusers {m['max_abs_diff_vs_diffusers']:.4f}"
        rows.append((os.path.basename(path), system, shape, f"{t:.3f} {what}", f"{m.get('peak_gib', 0):.1f} GiB", extra))
    base = r.get("diffusers-eager", {}).get("step_s")
    mine = r.get("ditserve", {}).get("step_s")
    if base and mine:
        rows.append((os.path.basename(path), "ditserve / eager", shape, f"{mine / base:.2f}x", "", ""))
    comp = r.get("diffusers-compile", {}).get("step_s")
    if comp and mine:
        rows.append((os.path.basename(path), "ditserve / compile", shape, f"{mine / comp:.2f}x", "", ""))
    print(f"# {os.path.basename(path)}: diffusers {r['diffusers']}, torch {r['torch']}, {r['gpu']}, {r['dtype']}")
widths = [max(len(str(x[i])) for x in rows) for i in range(6)] if rows else []
for x in rows:
    print("  ".join(str(v).ljust(w) for v, w in zip(x, widths)))
EOF
}

actions=("$@")
[ ${#actions[@]} -eq 0 ] && actions=(quick report)
failed=0
for a in "${actions[@]}"; do
  case $a in
    quick) do_quick || { log "quick failed"; failed=1; } ;;
    decode) do_decode || { log "decode failed"; failed=1; } ;;
    model) do_model || { log "model failed"; failed=1; } ;;
    served) do_served || { log "served failed"; failed=1; } ;;
    report) do_report || failed=1 ;;
    *) log "unknown action '$a' (quick|decode|model|served|report)"; exit 2 ;;
  esac
done
exit $failed
