#!/usr/bin/env bash
# FLUX.1-dev side-by-side benchmark on a GPU host: ditserve (served end to end through gRPC) and the
# reference systems (diffusers eager, diffusers + torch.compile; ParaAttention ulysses2/ring2 eager and
# compiled when 2+ GPUs are visible), same GPU(s), same shapes (1024x1024, random bf16 weights), same run.
# Called by scripts/gpu_host.sh bench (which exports DITSERVE_BUILD_DIR, DITSERVE_PYTHON, DITSERVE_HOST_PYTHON,
# PYTHONPATH, LD_LIBRARY_PATH). Prints a table; writes records.jsonl and <date>-<gpu>.json to $BENCH_OUT.
#
# Usage: scripts/bench_gpu.sh [model|ditserve|profile|quality|references|report|all]...   (no argument: all)
#   model       random-weight FLUX.1-dev checkpoint (weights initialised on the GPU) exported to $BENCH_MODEL
#               (bf16) and $BENCH_MODEL_FP8 (the opt-in FP8 block weights, export_model.py --fp8)
#   ditserve    start ditserve per layout (time to ready), 1 warm-up + $BENCH_RUNS requests: e2e, stages,
#               step time, peak GPU memory (process and per stage), a 2048x2048 request (decode);
#               layouts: single, and ulysses2 / ring2 on 2+ GPUs (their PNG compared with the 1-GPU one);
#               then the FP8 export (system "ditserve-fp8") on 1 GPU and ulysses2
#   profile     one profiled transformer evaluation per export: device time by kind (GEMM / attention /
#               other), top ops, and the forward alone timed like the references
#   quality     scripts/bench/fused_quality.py: bf16 fused / unfused and FP8 vs float32 on the full model
#   references  ../shared/anchors' flux_bench.py (scripts/bench/flux_reference.py): ms per transformer forward
#   report      table + JSON records
# Settings: BENCH_DEVICE (cuda|cpu), BENCH_GPUS (default: nvidia-smi's count), BENCH_CUDA_GRAPHS (true|false),
#           BENCH_CACHE_THRESHOLDS (default "0.08 0.12"), BENCH_BIG (0 skips the 2048x2048 request),
#           BENCH_OUT (default /tmp/ditserve-bench), BENCH_MODEL (default /tmp/ditserve-bench-model/flux-dev),
#           BENCH_MODEL_FP8 (default $BENCH_MODEL-fp8; the FP8 runs are skipped, with a note, when it is absent),
#           BENCH_SRC (checkpoint scratch, default /dev/shm/ditserve-bench-src, deleted after export),
#           BENCH_LAYOUTS (default "single ulysses2 ring2 fp8:single fp8:ulysses2"),
#           BENCH_RUNS (default 3), BENCH_STEPS (default 28), BENCH_RES (default 1024),
#           BENCH_COMMIT (recorded commit; default: git rev-parse --short HEAD),
#           BENCH_REF_MODES (default "single compile"), BENCH_REF_SITE (a directory of packages, e.g. the newest
#           diffusers, put first on the references' PYTHONPATH instead of the bundle's).
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
BUILD=${DITSERVE_BUILD_DIR:-$REPO/build-gpu}
PY=${DITSERVE_PYTHON:-python3}
HOST_PY=${DITSERVE_HOST_PYTHON:-$PY}
OUT=${BENCH_OUT:-/tmp/ditserve-bench}
MODEL=${BENCH_MODEL:-/tmp/ditserve-bench-model/flux-dev}
MODEL_FP8=${BENCH_MODEL_FP8:-$MODEL-fp8}
SRC=${BENCH_SRC:-/dev/shm/ditserve-bench-src}
RUNS=${BENCH_RUNS:-3}
STEPS=${BENCH_STEPS:-28}
RES=${BENCH_RES:-1024}
DEVICE=${BENCH_DEVICE:-cuda}        # cpu: a dry run of the script on a CPU machine (tiny model)
GRAPHS=${BENCH_CUDA_GRAPHS:-false}  # server.cuda_graphs
NGPU=${BENCH_GPUS:-$(nvidia-smi -L 2>/dev/null | wc -l)}
mkdir -p "$OUT"
RECORDS=$OUT/records.jsonl
log() { echo "bench: $*" >&2; }

# record SYSTEM GPUS LAYOUT METRIC VALUE UNIT [NOTE]
record() {
  printf '{"system":"%s","model":"flux.1-dev","gpus":%s,"layout":"%s","metric":"%s","value":%s,"unit":"%s","note":"%s"}\n' \
    "$1" "$2" "$3" "$4" "$5" "$6" "${7:-}" >> "$RECORDS"
}

do_model() {
  if [ -f "$MODEL/model.json" ]; then log "model: $MODEL exists"; return 0; fi
  local t0=$SECONDS
  rm -rf "$SRC"
  "$PY" scripts/make_fullsize_flux.py --out "$SRC" --variant dev --device cuda || return 1
  log "checkpoint written in $((SECONDS - t0)) s"
  t0=$SECONDS
  "$PY" scripts/export_model.py --family flux --src "$SRC" --out "$MODEL" --dtype bfloat16 --name flux-dev --no-verify || return 1
  log "exported in $((SECONDS - t0)) s"
  t0=$SECONDS
  "$PY" scripts/export_model.py --family flux --src "$SRC" --out "$MODEL_FP8" --dtype bfloat16 --fp8 --name flux-dev \
    --no-verify || return 1
  log "exported (fp8) in $((SECONDS - t0)) s"
  rm -rf "$SRC"
}

# Polls the GPUs' used memory (MiB) into $1 until the file $2 disappears.
poll_gpu_mem() {
  local out=$1 flag=$2 max=0 v
  while [ -f "$flag" ]; do
    v=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | sort -n | tail -1)
    [ "${v:-0}" -gt "$max" ] && max=$v && echo "$max" > "$out"
    sleep 0.2
  done
}

# ditserve on every layout the host allows: 1 GPU, and ulysses2 / ring2 groups when 2+ GPUs are visible
# (the layouts ParaAttention is measured with); the FP8 export on 1 GPU and ulysses2. BENCH_LAYOUTS picks a
# subset (e.g. "single ulysses2" in one call, "ring2 fp8:single fp8:ulysses2" in the next).
do_ditserve() {
  local want=${BENCH_LAYOUTS:-single ulysses2 ring2 fp8:single fp8:ulysses2} l layout system model ranks u r
  for l in $want; do
    layout=${l#fp8:}; system=ditserve; model=$MODEL
    if [ "$l" != "$layout" ]; then
      system=ditserve-fp8; model=$MODEL_FP8
      [ -f "$MODEL_FP8/model.json" ] || { log "no FP8 export at $MODEL_FP8: $l not run"; continue; }
    fi
    case $layout in
      single) ranks=1 u=1 r=1 ;;
      ulysses2) ranks=2 u=2 r=1 ;;
      ring2) ranks=2 u=1 r=2 ;;
      *) log "unknown layout $l (single|ulysses2|ring2, optionally fp8:)"; return 1 ;;
    esac
    if [ "$ranks" -gt "$NGPU" ]; then log "$l needs $ranks GPUs, $NGPU visible: not run"; continue; fi
    SYSTEM=$system MODEL=$model run_ditserve "$layout" "$ranks" "$u" "$r" || return 1
  done
}

# [SYSTEM=ditserve] [MODEL=...] run_ditserve LAYOUT RANKS ULYSSES RING
run_ditserve() {
  [ -f "$MODEL/model.json" ] || { log "no model at $MODEL: run 'model' first"; return 1; }
  local layout=$1 gpus=$2 ulysses=$3 ring=$4 system=${SYSTEM:-ditserve}
  local dir=$OUT/$system-$layout port=$((51000 + RANDOM % 1000)) devices="" r
  for ((r = 0; r < gpus; r++)); do
    if [ "$DEVICE" = cpu ]; then devices+="${devices:+, }\"cpu\""; else devices+="${devices:+, }\"$DEVICE:$r\""; fi
  done
  mkdir -p "$dir"
  cat > "$dir/config.json" <<JSON
{"server": {"grpc_address": "127.0.0.1:$port", "metrics_address": "", "queue_capacity": 4,
            "store_base_port": $((30000 + RANDOM % 20000)), "cuda_graphs": $GRAPHS},
 "models": [{"name": "flux-dev", "path": "$MODEL"}],
 "groups": [{"model": "flux-dev", "ranks": $gpus, "devices": [$devices],
             "layout": {"cfg": 1, "ulysses": $ulysses, "ring": $ring}}]}
JSON
  local ctl="$BUILD/server/ditctl --server 127.0.0.1:$port"
  local flag=$dir/polling; touch "$flag"; echo 0 > "$dir/peak_mib"
  poll_gpu_mem "$dir/peak_mib" "$flag" &
  local poller=$!
  local t0; t0=$(date +%s.%N)
  "$BUILD/server/ditserve" --config "$dir/config.json" > "$dir/server.log" 2>&1 &
  local pid=$!
  until $ctl health --timeout 2 > /dev/null 2>&1; do
    kill -0 $pid 2>/dev/null || { log "ditserve exited"; tail -20 "$dir/server.log"; rm -f "$flag"; return 1; }
    sleep 0.2
  done
  local ready; ready=$(awk -v a="$t0" -v b="$(date +%s.%N)" "BEGIN{printf \"%.2f\", b - a}")
  log "ready in ${ready} s"
  record "$system" $gpus $layout ready_s "$ready" s "process start to gRPC health SERVING (model load)"
  local i
  for i in $(seq 0 "$RUNS"); do
    local a b; a=$(date +%s.%N)
    $ctl generate -p "a red fox in fresh snow, golden hour" -W "$RES" -H "$RES" -s "$STEPS" --seed $((i + 1)) \
      -o "$dir/out$i.png" -q --json > "$dir/result$i.json" || { log "generate $i failed"; tail -20 "$dir/server.log"; }
    b=$(date +%s.%N)
    echo "{\"client_s\": $(awk -v a="$a" -v b="$b" "BEGIN{printf \"%.3f\", b - a}")}" > "$dir/client$i.json"
  done
  # First Block Cache (hit rates depend on real weights: random weights change little between steps or a
  # lot, so these say what the cache costs and saves here, not what it does on a real checkpoint) and a
  # 2048x2048 request for the VAE decode at that size.
  local thr
  [ "$layout" = single ] && [ "$system" = ditserve ] || BENCH_CACHE_THRESHOLDS=none
  for thr in ${BENCH_CACHE_THRESHOLDS:-0.08 0.12}; do
    [ "$thr" = none ] && break
    local a b; a=$(date +%s.%N)
    $ctl generate -p "a red fox in fresh snow, golden hour" -W "$RES" -H "$RES" -s "$STEPS" --seed 1 \
      --cache-threshold "$thr" -o "$dir/cache$thr.png" -q --json > "$dir/cache$thr.json" || break
    b=$(date +%s.%N)
    echo "{\"client_s\": $(awk -v a="$a" -v b="$b" "BEGIN{printf \"%.3f\", b - a}"), \"threshold\": $thr}" >> "$dir/cache$thr.json"
  done
  if [ "$system" = ditserve ] && [ "${BENCH_BIG:-1}" = 1 ]; then
    $ctl generate -p "a red fox in fresh snow, golden hour" -W 2048 -H 2048 -s 2 --seed 1 -o "$dir/big.png" -q \
      --json > "$dir/big.json" || log "2048x2048 request failed"
  fi
  rm -f "$flag"; wait $poller 2>/dev/null
  kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null
  local recorded=0
  "$PY" - "$dir" "$RUNS" "$STEPS" "$RECORDS" "$(cat "$dir/peak_mib")" "$gpus" "$layout" "$system" \
    "$OUT/$system-single/out0.png" <<'PYEOF' || recorded=1
import glob, json, os, statistics, sys
d, runs, steps, records, peak = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
gpus, layout, system, single_png = int(sys.argv[6]), sys.argv[7], sys.argv[8], sys.argv[9]
res = []
for i in range(1, runs + 1):  # run 0 is the warm-up
    try:
        r = json.load(open(f"{d}/result{i}.json")); c = json.load(open(f"{d}/client{i}.json"))
    except Exception:
        continue
    r["client_s"] = c["client_s"]; res.append(r)
if not res:
    sys.exit("no successful timed runs")
med = lambda k: statistics.median(x["timings"].get(k, 0.0) for x in res)
rows = [("e2e_s", statistics.median(x["client_s"] for x in res), "s", "client wall time: request in -> PNG written"),
        ("step_ms", 1000 * med("denoise") / steps, "ms", f"denoise stage / {steps} steps"),
        ("text_encode_s", med("text_encode"), "s", ""), ("denoise_s", med("denoise"), "s", ""),
        ("decode_s", med("decode"), "s", "VAE decode + postprocess"), ("encode_s", med("encode"), "s", "PNG encode"),
        ("peak_mem_gb", peak / 1024, "GB", "nvidia-smi memory.used peak (incl. CUDA context"
         + (", 2048x2048 request too)" if os.path.exists(f"{d}/big.json") else ")"))]
# Peak memory in use during a stage on the leader (the caching allocator's, resident weights included).
for stage in ("denoise", "decode"):
    peaks = [x.get("peak_device_bytes", {}).get(stage, 0) for x in res]
    if max(peaks) > 0:
        rows.append((f"{stage}_peak_gb", max(peaks) / 2**30, "GB", f"peak allocated during {stage} (leader)"))
# Output invariance: the warm-up request (seed 1) against the same system's 1-GPU image.
if layout != "single" and os.path.exists(single_png) and os.path.exists(f"{d}/out0.png"):
    import numpy as np
    from PIL import Image
    a = np.asarray(Image.open(single_png).convert("RGB"), dtype=np.float64)
    b = np.asarray(Image.open(f"{d}/out0.png").convert("RGB"), dtype=np.float64)
    if a.shape == b.shape:
        mse = float(((a - b) ** 2).mean())
        psnr = 99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)
        rows.append(("image_psnr_db", psnr, "dB", f"PNG vs the 1-GPU PNG (same seed, {steps} steps; 99 = identical)"))
        rows.append(("image_mean_abs", float(np.abs(a - b).mean()), "levels",
                     f"mean |difference| of 8-bit values vs the 1-GPU PNG (max {int(np.abs(a - b).max())})"))
for path in sorted(glob.glob(f"{d}/cache*.json")):
    lines = [json.loads(l) for l in open(path) if l.strip()]
    if len(lines) < 2:
        continue
    r, c = lines[0], lines[1]
    thr = c["threshold"]
    rows.append((f"e2e_s", c["client_s"], "s", f"first block cache threshold {thr}: "
                 f"{r['cache']['steps_skipped']} of {steps} steps skipped (random weights)"))
    rows.append((f"step_ms", 1000 * r["timings"]["denoise"] / steps, "ms", f"first block cache threshold {thr}"))
if os.path.exists(f"{d}/big.json"):
    try:
        big = json.load(open(f"{d}/big.json"))
        rows.append(("decode_s", big["timings"]["decode"], "s", f"VAE decode + postprocess at 2048x2048 ({gpus} GPU)"))
        peak = big.get("peak_device_bytes", {}).get("decode", 0)
        if peak:
            rows.append(("decode_peak_gb", peak / 2**30, "GB", "peak allocated during decode at 2048x2048 (leader)"))
    except Exception:
        pass
with open(records, "a") as f:
    for m, v, u, note in rows:
        f.write(json.dumps({"system": system, "model": "flux.1-dev", "gpus": gpus, "layout": layout, "metric": m,
                            "value": round(v, 4), "unit": u, "note": note}) + "\n")
PYEOF
  # One file per kind: the results and client timings of every run, one image.
  for i in $(seq 0 "$RUNS"); do cat "$dir/result$i.json" "$dir/client$i.json" 2>/dev/null; done > "$dir/runs.jsonl"
  cat "$dir"/cache*.json "$dir/big.json" >> "$dir/runs.jsonl" 2>/dev/null
  rm -f "$dir"/result*.json "$dir"/client*.json "$dir"/out[1-9]*.png "$dir"/cache*.json "$dir"/cache*.png "$dir/big.json" "$dir/big.png"
  [ $recorded = 0 ] || log "$system $layout: no successful timed request (see $dir/server.log)"
  return $recorded
}

# The references run on BENCH_REF_SITE's packages when it is set (a newer diffusers than the bundle's parity pin:
# compare with the newest release) over the host's, else on the bundle's.
ref_python() {
  if [ -n "${BENCH_REF_SITE:-}" ]; then PYTHONPATH="$BENCH_REF_SITE" "$HOST_PY" "$@"; else "$PY" "$@"; fi
}

do_references() {
  local mode ver
  ver=$(ref_python -c 'import diffusers; print(diffusers.__version__)' 2>/dev/null)
  for mode in ${BENCH_REF_MODES:-single compile}; do
    log "reference: diffusers $ver $mode"
    local line
    line=$(ref_python scripts/bench/flux_reference.py $mode 2> "$OUT/ref_$mode.log" | tail -1)
    echo "$line" >> "$OUT/references.jsonl"
    local sys=diffusers; [ $mode = compile ] && sys=diffusers-compile
    local ms; ms=$(echo "$line" | "$PY" -c 'import json,sys; d=json.loads(sys.stdin.read()); print(round(d["median_s"]*1000,2))') || continue
    local mem; mem=$(echo "$line" | "$PY" -c 'import json,sys; print(round(json.loads(sys.stdin.read())["max_mem_gb"],2))')
    record $sys 1 single step_ms "$ms" ms "transformer forward, median of 10 (diffusers $ver)"
    record $sys 1 single peak_mem_gb "$mem" GB "torch.cuda.max_memory_allocated (diffusers $ver)"
  done
  if [ "$NGPU" -ge 2 ]; then
    for mode in ulysses ring ulysses_compile ring_compile; do
      log "reference: para-attn $mode (2 GPUs)"
      local line
      line=$("$HOST_PY" -m torch.distributed.run --nproc_per_node=2 scripts/bench/flux_reference.py $mode 2> "$OUT/ref_$mode.log" | tail -1)
      echo "$line" >> "$OUT/references.jsonl"
      local sys=para-attn; [[ $mode == *compile ]] && sys=para-attn-compile
      local ms; ms=$(echo "$line" | "$PY" -c 'import json,sys; print(round(json.loads(sys.stdin.read())["median_s"]*1000,2))') || continue
      record $sys 2 "${mode%_compile}2" step_ms "$ms" ms "transformer forward, median of 10"
    done
  else
    log "1 GPU visible: ParaAttention (2-GPU) references not run"
  fi
}

# Where a step's device time goes: one profiled evaluation of the exported transformer (same TorchScript
# graph and kernels as the engine's single-rank path).
do_profile() {
  profile_model ditserve "$MODEL" profile || return 1
  if [ -f "$MODEL_FP8/model.json" ]; then
    profile_model ditserve-fp8 "$MODEL_FP8" profile-fp8 || return 1
  else
    log "no FP8 export at $MODEL_FP8: not profiled"
  fi
}

# profile_model SYSTEM MODEL_DIR NAME: $OUT/NAME.{txt,json,log}
profile_model() {
  local system=$1 model=$2 name=$3
  [ -f "$model/model.json" ] || { log "no model at $model: run 'model' first"; return 1; }
  local lib=$BUILD/engine/libditserve_runtime.so
  [ -f "$lib" ] || { log "no $lib: build first"; return 1; }
  "$PY" scripts/bench/profile_step.py "$model" --engine-lib "$lib" --compare-unfused --res "$RES" --steps "$STEPS" --device "$DEVICE" \
    --json "$OUT/$name.json" 2> "$OUT/$name.log" | tee "$OUT/$name.txt" || return 1
  # The transformer forward alone, measured like the references (median of 10 synchronised forwards).
  local ms step
  read -r ms step < <("$PY" -c 'import json,sys; j=json.load(open(sys.argv[1])); print(round(j["wall_ms"], 2), round(j["step_ms"], 2))' "$OUT/$name.json") &&
    [ -n "$step" ] &&
    record "$system" 1 single step_ms "$ms" ms "transformer forward alone, median of 10 (the references' method)" &&
    record "$system" 1 single step_ms "$step" ms "in-process served step: step() + 1/$STEPS of the request's conditioning, median of 10"
}

do_quality() {
  local lib=$BUILD/engine/libditserve_runtime.so
  (cd scripts/bench && "$PY" fused_quality.py --engine-lib "$lib" --device "$DEVICE" \
     $([ "$DEVICE" = cpu ] && echo "--layers 1,1 --res 64 --text-len 16")) 2> "$OUT/quality.log" | tee "$OUT/quality.txt"
}

do_report() {
  local commit gpu date
  commit=${BENCH_COMMIT:-$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)}
  gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1); gpu=${gpu:-cpu}
  date=$(date -u +%Y-%m-%d)
  "$PY" scripts/bench/report.py "$RECORDS" --commit "$commit" --gpu "$gpu" --gpus "$NGPU" --date "$date" --out "$OUT" \
    --title "FLUX.1-dev ${RES}x${RES}, $STEPS steps, $(basename "$MODEL")"
}

[ $# -eq 0 ] && set -- all
failed=0
for a in "$@"; do
  case $a in
    model) do_model || failed=1 ;;
    ditserve) do_ditserve || failed=1 ;;
    references) do_references || failed=1 ;;
    profile) do_profile || failed=1 ;;
    quality) do_quality || failed=1 ;;
    report) do_report || failed=1 ;;
    all) { do_model && do_ditserve; } || failed=1; do_profile || failed=1; do_quality || failed=1
         do_references || failed=1; do_report || failed=1 ;;
    *) echo "unknown action $a" >&2; exit 2 ;;
  esac
done
exit $failed
