#!/usr/bin/env bash
# Mochi-1 side-by-side benchmark on a GPU host: ditserve (served end to end through gRPC, MP4 out) and diffusers
# (eager and torch.compile transformer steps in one process, the tiled VAE decode), same GPU, same shapes
# (480x848x163 frames = 44,520 video tokens, random bf16 weights at the released configs), same run.
# Called like bench_gpu.sh (scripts/gpu_host.sh exports DITSERVE_BUILD_DIR, DITSERVE_PYTHON, PYTHONPATH, ...).
#
# Usage: scripts/bench_mochi.sh [model|ditserve|references|report|quick]...   (no argument: quick)
#   model       random-weight Mochi-1 checkpoint (weights made on the GPU, scripts/make_fullsize_mochi.py) in
#               $BENCH_SRC, exported bf16 to $BENCH_MODEL (skipped when model.json is there)
#   ditserve    start ditserve on 1 GPU (time to ready), a warm-up request ($BENCH_WARM_FRAMES frames, default 7) and
#               one at the benchmark size, both with $BENCH_STEPS steps: step time (denoise / steps), text /
#               decode / MP4 stage times, peak memory
#   references  scripts/bench/mochi_reference.py with $BENCH_REF_SITE first on PYTHONPATH (the newest diffusers):
#               eager and torch.compile step times, tiled VAE decode
#   report      table + JSON records
#   quick       model, ditserve, references, report within BENCH_BUDGET_S (default 380 s from the start, for a
#               call killed at 480 s): every stage gets what is left and the references skip what would not fit
# Settings: BENCH_DEVICE (cuda|cpu: a dry run on the tiny model), BENCH_OUT (default $OUT or /tmp/mochi-bench),
#           BENCH_MODEL (default /dev/shm/mochi-bench-model), BENCH_SRC (default /dev/shm/mochi-bench-src),
#           BENCH_FRAMES/HEIGHT/WIDTH (default 163/480/848), BENCH_STEPS (default 3), BENCH_REF_SITE,
#           BENCH_REF_MODES (default "eager compile"), BENCH_BUDGET_S, BENCH_COMMIT, BENCH_STRICT (1: report fails
#           unless ditserve and a reference produced a step time; the CPU dry run).
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
START=$SECONDS
BUILD=${DITSERVE_BUILD_DIR:-$REPO/build-gpu}
PY=${DITSERVE_PYTHON:-python3}
OUT_DIR=${BENCH_OUT:-${OUT:-/tmp/mochi-bench}}
MODEL=${BENCH_MODEL:-/dev/shm/mochi-bench-model}
SRC=${BENCH_SRC:-/dev/shm/mochi-bench-src}
FRAMES=${BENCH_FRAMES:-163}
HEIGHT=${BENCH_HEIGHT:-480}
WIDTH=${BENCH_WIDTH:-848}
STEPS=${BENCH_STEPS:-3}
DEVICE=${BENCH_DEVICE:-cuda}
BUDGET=${BENCH_BUDGET_S:-380}
mkdir -p "$OUT_DIR"
RECORDS=$OUT_DIR/records.jsonl
log() { echo "bench_mochi [$((SECONDS - START)) s]: $*" >&2; }
left() { echo $((BUDGET - (SECONDS - START))); }

# record SYSTEM METRIC VALUE UNIT [NOTE]
record() {
  printf '{"system":"%s","model":"mochi-1","gpus":1,"metric":"%s","value":%s,"unit":"%s","note":"%s"}\n' \
    "$1" "$2" "$3" "$4" "${5:-}" >> "$RECORDS"
}

do_model() {
  if [ -f "$MODEL/model.json" ]; then log "model: $MODEL exists"; return 0; fi
  local t0=$SECONDS
  if [ ! -f "$SRC/model_index.json" ]; then
    rm -rf "$SRC"
    "$PY" scripts/make_fullsize_mochi.py --out "$SRC" --device "$DEVICE" || return 1
    log "checkpoint written in $((SECONDS - t0)) s"
  fi
  t0=$SECONDS
  "$PY" scripts/export_model.py --family mochi --src "$SRC" --out "$MODEL" --dtype bfloat16 --name mochi-1 --no-verify \
    || return 1
  log "exported in $((SECONDS - t0)) s"
}

poll_gpu_mem() {
  local out=$1 flag=$2 max=0 v
  while [ -f "$flag" ]; do
    v=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null | sort -n | tail -1)
    [ "${v:-0}" -gt "$max" ] && max=$v && echo "$max" > "$out"
    sleep 0.2
  done
}

do_ditserve() {
  [ -f "$MODEL/model.json" ] || { log "no model at $MODEL: run 'model' first"; return 1; }
  local dir=$OUT_DIR/ditserve port=$((51000 + RANDOM % 1000)) dev="\"$DEVICE:0\""
  [ "$DEVICE" = cpu ] && dev='"cpu"'
  mkdir -p "$dir"
  cat > "$dir/config.json" <<JSON
{"server": {"grpc_address": "127.0.0.1:$port", "metrics_address": "", "queue_capacity": 4,
            "store_base_port": $((30000 + RANDOM % 20000))},
 "models": [{"name": "mochi-1", "path": "$MODEL"}],
 "groups": [{"model": "mochi-1", "ranks": 1, "devices": [$dev]}]}
JSON
  local ctl="$BUILD/server/ditctl --server 127.0.0.1:$port"
  local flag=$dir/polling; touch "$flag"; echo 0 > "$dir/peak_mib"
  poll_gpu_mem "$dir/peak_mib" "$flag" &
  local poller=$! t0; t0=$(date +%s.%N)
  "$BUILD/server/ditserve" --config "$dir/config.json" > "$dir/server.log" 2>&1 &
  local pid=$!
  until $ctl health --timeout 2 > /dev/null 2>&1; do
    kill -0 $pid 2>/dev/null || { log "ditserve exited"; tail -20 "$dir/server.log"; rm -f "$flag"; return 1; }
    [ "$(left)" -gt 0 ] || { log "budget spent waiting for ditserve"; kill $pid; rm -f "$flag"; return 1; }
    sleep 0.2
  done
  local ready; ready=$(awk -v a="$t0" -v b="$(date +%s.%N)" "BEGIN{printf \"%.2f\", b - a}")
  log "ready in ${ready} s"
  record ditserve ready_s "$ready" s "process start to gRPC health SERVING (model load)"
  # 0: warm-up at $BENCH_WARM_FRAMES frames (loads kernels and plans without a full-length decode), 1: timed
  local i ok=0 frames
  for i in 0 1; do
    frames=$FRAMES; [ "$i" = 0 ] && frames=${BENCH_WARM_FRAMES:-7}
    [ "$(left)" -gt 10 ] || { log "no budget left for request $i"; break; }
    local a b; a=$(date +%s.%N)
    timeout "$(left)" $ctl generate -p "a red fox running through fresh snow, golden hour" \
      -W "$WIDTH" -H "$HEIGHT" --frames "$frames" -s "$STEPS" --seed $((i + 1)) -f mp4 -o "$dir/out$i.mp4" -q --json \
      > "$dir/result$i.json" || { log "generate $i failed"; tail -20 "$dir/server.log"; break; }
    b=$(date +%s.%N)
    echo "{\"client_s\": $(awk -v a="$a" -v b="$b" "BEGIN{printf \"%.3f\", b - a}")}" > "$dir/client$i.json"
    ok=$((ok + 1))
  done
  rm -f "$flag"; wait $poller 2>/dev/null
  kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null
  [ "$ok" -gt 1 ] || return 1
  "$PY" - "$dir" "$STEPS" "$RECORDS" "$(cat "$dir/peak_mib")" "$FRAMES" <<'PYEOF'
import json, os, sys
d, steps, records, peak, frames = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), sys.argv[5]
r = json.load(open(f"{d}/result1.json")); c = json.load(open(f"{d}/client1.json"))
t = r["timings"]
note = f"{r.get('frames', frames)} frames"
rows = [("e2e_s", c["client_s"], "s", f"client wall time, request in -> MP4 written ({note})"),
        ("step_ms", 1000 * t.get("denoise", 0.0) / steps, "ms", f"denoise stage / {steps} steps, CFG batch of 2"),
        ("text_encode_s", t.get("text_encode", 0.0), "s", ""), ("decode_s", t.get("decode", 0.0), "s",
         f"VAE decode of {frames} frames + uint8"), ("encode_s", t.get("encode", 0.0), "s", "MP4 (libx264)"),
        ("peak_mem_gb", peak / 1024, "GB", "nvidia-smi memory.used peak (incl. CUDA context)")]
for stage in ("denoise", "decode"):
    v = r.get("peak_device_bytes", {}).get(stage, 0)
    if v:
        rows.append((f"{stage}_peak_gb", v / 2**30, "GB", f"peak allocated during {stage}"))
with open(records, "a") as f:
    for m, v, u, n in rows:
        f.write(json.dumps({"system": "ditserve", "model": "mochi-1", "gpus": 1, "metric": m, "value": round(v, 3),
                            "unit": u, "note": n}) + "\n")
PYEOF
}

# PYTHONPATH for the newest diffusers: BENCH_REF_SITE first, the bundle's site ($DITSERVE_SITE) left out.
ref_path() { echo "$BENCH_REF_SITE:$1" | tr : '\n' | grep -vxF "${DITSERVE_SITE:-/tmp/ditserve-site}" | paste -sd:; }

do_references() {
  [ -f "$SRC/model_index.json" ] || { log "no diffusers checkpoint at $SRC: run 'model' first"; return 1; }
  local budget; budget=$(left)
  [ "$budget" -gt 30 ] || { log "no budget left for the references"; return 0; }
  local pp=${PYTHONPATH:-} py=$PY
  # The host's ditserve-python wrapper puts the bundle's wheels (the pinned diffusers) ahead of PYTHONPATH: the
  # newest release runs on the bare host Python, without the bundle's site (its huggingface_hub is too old for it).
  if [ -n "${BENCH_REF_SITE:-}" ]; then pp=$(ref_path "$pp"); py=${DITSERVE_HOST_PYTHON:-$PY}; fi
  PYTHONPATH=$pp timeout "$budget" "$py" scripts/bench/mochi_reference.py --src "$SRC" --frames "$FRAMES" \
    --height "$HEIGHT" --width "$WIDTH" --modes "${BENCH_REF_MODES:-eager compile}" --budget-s $((budget - 10)) \
    --device "$DEVICE" --vae 2> "$OUT_DIR/references.log" \
    | "$PY" -c 'import json,sys
for line in sys.stdin:
    r = json.loads(line); r.update(model="mochi-1", gpus=1); print(json.dumps(r), flush=True)' >> "$RECORDS"
  local rc=${PIPESTATUS[0]}
  [ "$rc" = 0 ] || log "references exited with $rc (see $OUT_DIR/references.log)"
}

do_report() {
  "$PY" - "$RECORDS" "$OUT_DIR" "${BENCH_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null)}" "$FRAMES" "$HEIGHT" \
    "$WIDTH" "$DEVICE" <<'PYEOF'
import json, os, subprocess, sys, time
records, out, commit, frames, height, width, device = sys.argv[1:8]
rows = [json.loads(l) for l in open(records)] if os.path.exists(records) else []
gpu = "cpu"
if device == "cuda":
    gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                         text=True).stdout.strip().splitlines()[0]
print(f"\nMochi-1 {frames}x{height}x{width}, {gpu}, commit {commit}")
print(f"{'system':34} {'metric':20} {'value':>10}  unit  note")
for r in rows:
    v = "skipped" if r["value"] is None else f"{r['value']:.3f}" if isinstance(r["value"], float) else str(r["value"])
    print(f"{r['system']:34} {r['metric']:20} {v:>10}  {r['unit']:4}  {r.get('note', '')}")
step = {r["system"]: r["value"] for r in rows if r["metric"] == "step_ms" and r["value"]}
if "ditserve" in step:
    for s, v in step.items():
        if s != "ditserve":
            print(f"ditserve step / {s}: {step['ditserve'] / v:.3f}")
name = f"{time.strftime('%Y-%m-%d')}-mochi-{gpu.replace(' ', '_')}.json"
json.dump({"commit": commit, "gpu": gpu, "shape": [int(frames), int(height), int(width)], "records": rows},
          open(os.path.join(out, name), "w"), indent=1)
print(f"records: {os.path.join(out, name)}")
if os.environ.get("BENCH_STRICT") == "1":  # the CPU dry run: every system must have produced a step time
    missing = [s for s in ("ditserve", "reference") if not any(k == s or (s == "reference" and k != "ditserve")
                                                           for k in step)]
    if missing:
        sys.exit(f"no step time from: {', '.join(missing)}")
PYEOF
}

actions=("$@")
[ ${#actions[@]} -eq 0 ] && actions=(quick)
for a in "${actions[@]}"; do
  case $a in
    model) do_model || exit 1 ;;
    ditserve) do_ditserve || log "ditserve failed" ;;
    references) do_references ;;
    report) do_report || exit 1 ;;
    quick) do_model || exit 1; do_ditserve || log "ditserve failed"; do_references; do_report || exit 1 ;;
    *) echo "unknown action $a (model|ditserve|references|report|quick)" >&2; exit 2 ;;
  esac
done
