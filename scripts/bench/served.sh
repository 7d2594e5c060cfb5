# Sourced by the video benchmark drivers (bench_mochi.sh, bench_cogvideox.sh, bench_hunyuan.sh): the random-weight
# checkpoint and its export, ditserve served end to end on one device (time to ready, a warm-up and a timed
# request -> MP4, stage times, peak memory) and the report table. The caller, in the repository root, sets
# BENCH_NAME (its log prefix), BUDGET, OUT_DIR, MODEL, SRC, FRAMES, HEIGHT and WIDTH; the settings every driver
# shares come from the environment here. BENCH_FP8_ATTN=1: the served group runs FP8 attention (a group's
# fp8_attention), its records named MODEL-fp8attn.
REPO=$(pwd)
START=${START:-$SECONDS}
BUILD=${DITSERVE_BUILD_DIR:-$REPO/build-gpu}
PY=${DITSERVE_PYTHON:-python3}
DEVICE=${BENCH_DEVICE:-cuda}
STEPS=${BENCH_STEPS:-3}
mkdir -p "$OUT_DIR"
RECORDS=$OUT_DIR/records.jsonl
log() { echo "$BENCH_NAME [$((SECONDS - START)) s]: $*" >&2; }
left() { echo $((BUDGET - (SECONDS - START))); }

# record SYSTEM MODEL METRIC VALUE UNIT [NOTE]: one JSON line in $RECORDS
record() {
  printf '{"system":"%s","model":"%s","gpus":1,"metric":"%s","value":%s,"unit":"%s","note":"%s"}\n' \
    "$1" "$2" "$3" "$4" "$5" "${6:-}" >> "$RECORDS"
}

# ref_python TIMEOUT_S SCRIPT [ARGS...]: a reference script (0: no time limit) with scripts/ on the path. With
# BENCH_REF_SITE (the newest diffusers) it runs on the bare host Python ($DITSERVE_HOST_PYTHON) with that site first
# and the bundle's site ($DITSERVE_SITE) left out: the host's ditserve-python wrapper puts the pinned diffusers
# first, and the bundle's huggingface_hub is too old for the newest release.
ref_python() {
  local t=$1 pp=$REPO/scripts${PYTHONPATH:+:$PYTHONPATH} py=$PY; shift
  if [ -n "${BENCH_REF_SITE:-}" ]; then
    pp=$(echo "$BENCH_REF_SITE:$pp" | tr : '\n' | grep -vxF "${DITSERVE_SITE:-/tmp/ditserve-site}" | paste -sd:)
    py=${DITSERVE_HOST_PYTHON:-$PY}
  fi
  PYTHONPATH=$pp timeout "$t" "$py" "$@"
}

# served_model FAMILY NAME EXPORT_DTYPE MAKER [MAKER_ARGS...]: MAKER (a make_fullsize_*.py) writes the diffusers
# checkpoint to $SRC with weights made on $DEVICE, exported (unverified: the full-size check would load it twice;
# SERVED_EXPORT_ARGS added to export_model.py) to $MODEL; each skipped when already there (kept while the host is
# held).
served_model() {
  local family=$1 name=$2 dtype=$3 t0=$SECONDS; shift 3
  if [ -f "$MODEL/model.json" ]; then log "model: $MODEL exists"; return 0; fi
  if [ ! -f "$SRC/model_index.json" ]; then
    rm -rf "$SRC"
    "$PY" "$@" --out "$SRC" --device "$DEVICE" || return 1
    log "checkpoint written in $((SECONDS - t0)) s"
    record ditserve "$name" checkpoint_s $((SECONDS - t0)) s "random-weight checkpoint ($(basename "$1"))"
  fi
  t0=$SECONDS
  # shellcheck disable=SC2086  # SERVED_EXPORT_ARGS: extra export flags (word-split), e.g. --fp8
  "$PY" scripts/export_model.py --family "$family" --src "$SRC" --out "$MODEL" --name "$name" --dtype "$dtype" \
    --no-verify ${SERVED_EXPORT_ARGS:-} || return 1
  log "exported in $((SECONDS - t0)) s"
  record ditserve "$name" export_s $((SECONDS - t0)) s "export_model.py --family $family --dtype $dtype ${SERVED_EXPORT_ARGS:-}"
}

poll_gpu_mem() {
  local out=$1 flag=$2 max=0 v
  while [ -f "$flag" ]; do
    v=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null | sort -n | tail -1)
    [ "${v:-0}" -gt "$max" ] && max=$v && echo "$max" > "$out"
    sleep 0.2
  done
}

# served_run NAME MODEL_DIR PROMPT: starts ditserve with the model, sends a warm-up request at BENCH_WARM_FRAMES
# frames with BENCH_WARM_STEPS steps (default STEPS) and one at FRAMES x HEIGHT x WIDTH with STEPS steps, stops the
# server and records the timed request's figures. A warm-up at the timed shape (the caller's choice where its decode
# is cheap) leaves the timed step free of per-shape first-call costs (attention plans, allocator growth).
served_run() {
  local name=$1 model=$2 prompt=$3 fp8_attention=false
  [ "${BENCH_FP8_ATTN:-0}" = 1 ] && name=$name-fp8attn fp8_attention=true
  [ -f "$model/model.json" ] || { log "no model at $model: run 'model' first"; return 1; }
  local dir=$OUT_DIR/ditserve port=$((51000 + RANDOM % 1000)) dev="\"$DEVICE:0\""
  [ "$DEVICE" = cpu ] && dev='"cpu"'
  mkdir -p "$dir"
  cat > "$dir/config.json" <<JSON
{"server": {"grpc_address": "127.0.0.1:$port", "metrics_address": "", "queue_capacity": 4,
            "store_base_port": $((30000 + RANDOM % 20000))},
 "models": [{"name": "$name", "path": "$model"}],
 "groups": [{"model": "$name", "ranks": 1, "devices": [$dev], "fp8_attention": $fp8_attention}]}
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
  record ditserve "$name" ready_s "$ready" s "process start to gRPC health SERVING (model load)"
  # 0: the warm-up, 1: timed
  local i ok=0 frames steps
  for i in 0 1; do
    frames=$FRAMES steps=$STEPS
    [ "$i" = 0 ] && frames=$BENCH_WARM_FRAMES steps=${BENCH_WARM_STEPS:-$STEPS}
    [ "$(left)" -gt 10 ] || { log "no budget left for request $i"; break; }
    local a b; a=$(date +%s.%N)
    timeout "$(left)" $ctl generate -p "$prompt" \
      -W "$WIDTH" -H "$HEIGHT" --frames "$frames" -s "$steps" --seed $((i + 1)) -f mp4 -o "$dir/out$i.mp4" -q --json \
      > "$dir/result$i.json" || { log "generate $i failed"; tail -20 "$dir/server.log"; break; }
    b=$(date +%s.%N)
    echo "{\"client_s\": $(awk -v a="$a" -v b="$b" "BEGIN{printf \"%.3f\", b - a}")}" > "$dir/client$i.json"
    ok=$((ok + 1))
  done
  rm -f "$flag"; wait $poller 2>/dev/null
  kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null
  [ "$ok" -gt 1 ] || return 1
  "$PY" - "$dir" "$STEPS" "$RECORDS" "$(cat "$dir/peak_mib")" "$FRAMES" "$name" <<'PYEOF'
import json, os, sys
d, steps, records, peak, frames, name = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), *sys.argv[5:7]
r = json.load(open(f"{d}/result1.json")); c = json.load(open(f"{d}/client1.json"))
t = r["timings"]
note = f"{r.get('frames', frames)} frames"
rows = [("e2e_s", c["client_s"], "s", f"client wall time, request in -> MP4 written ({note})"),
        ("step_ms", 1000 * t.get("denoise", 0.0) / steps, "ms", f"denoise stage / {steps} steps (all CFG branches)"),
        ("text_encode_s", t.get("text_encode", 0.0), "s", ""), ("decode_s", t.get("decode", 0.0), "s",
         f"VAE decode of {frames} frames + uint8"), ("encode_s", t.get("encode", 0.0), "s", "MP4 (libx264)"),
        ("peak_mem_gb", peak / 1024, "GB", "nvidia-smi memory.used peak (incl. CUDA context)")]
for stage in ("denoise", "decode"):
    v = r.get("peak_device_bytes", {}).get(stage, 0)
    if v:
        rows.append((f"{stage}_peak_gb", v / 2**30, "GB", f"peak allocated during {stage}"))
with open(records, "a") as f:
    for m, v, u, n in rows:
        f.write(json.dumps({"system": "ditserve", "model": name, "gpus": 1, "metric": m, "value": round(v, 3),
                            "unit": u, "note": n}) + "\n")
PYEOF
}

# served_report TITLE FILE_TAG: the table of $RECORDS, the step ratios, and <date>-FILE_TAG-<gpu>.json in OUT_DIR.
# BENCH_STRICT=1 (the CPU dry runs): fails unless ditserve and a reference produced a step time.
served_report() {
  "$PY" - "$RECORDS" "$OUT_DIR" "${BENCH_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null)}" "$FRAMES" "$HEIGHT" \
    "$WIDTH" "$DEVICE" "$1" "$2" <<'PYEOF'
import json, os, subprocess, sys, time
records, out, commit, frames, height, width, device, title, tag = sys.argv[1:10]
rows = [json.loads(l) for l in open(records)] if os.path.exists(records) else []
gpu = "cpu"
if device == "cuda":
    gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                         text=True).stdout.strip().splitlines()[0]
print(f"\n{title} {frames}x{height}x{width}, {gpu}, commit {commit}")
print(f"{'system':34} {'metric':20} {'value':>10}  unit  note")
for r in rows:
    v = "skipped" if r["value"] is None else f"{r['value']:.3f}" if isinstance(r["value"], float) else str(r["value"])
    print(f"{r['system']:34} {r['metric']:20} {v:>10}  {r['unit']:4}  {r.get('note', '')}")
step = {r["system"]: r["value"] for r in rows if r["metric"] == "step_ms" and r["value"]}
for mine in [s for s in step if s.startswith("ditserve")]:  # served, and in process where the driver times it
    for s, v in step.items():
        if not s.startswith("ditserve"):
            print(f"{mine} step / {s}: {step[mine] / v:.3f}")
name = f"{time.strftime('%Y-%m-%d')}-{tag}-{gpu.replace(' ', '_')}.json"
json.dump({"commit": commit, "gpu": gpu, "shape": [int(frames), int(height), int(width)], "records": rows},
          open(os.path.join(out, name), "w"), indent=1)
print(f"records: {os.path.join(out, name)}")
if os.environ.get("BENCH_STRICT") == "1":
    missing = [s for s in ("ditserve", "reference") if not any(k == s or (s == "reference" and k != "ditserve")
                                                           for k in step)]
    if missing:
        sys.exit(f"no step time from: {', '.join(missing)}")
PYEOF
}

# served_main REFS [ACTION...]: runs the actions model | ditserve | REFS | report | quick (the caller's do_model,
# do_ditserve, do_REFS, do_report; quick = all four in that order, within the budget). No action: quick.
served_main() {
  local refs=$1 a; shift
  [ $# -eq 0 ] && set -- quick
  for a in "$@"; do
    case $a in
      model) do_model || exit 1 ;;
      ditserve) do_ditserve || log "ditserve failed" ;;
      "$refs") "do_$refs" ;;
      report) do_report || exit 1 ;;
      quick) do_model || exit 1; do_ditserve || log "ditserve failed"; "do_$refs"; do_report || exit 1 ;;
      *) echo "unknown action $a (model|ditserve|$refs|report|quick)" >&2; exit 2 ;;
    esac
  done
}
