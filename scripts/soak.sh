#!/usr/bin/env bash
# Soak benchmark (not a test): >= 10,000 small requests, a mix of good, invalid, unknown-model,
# deadline-exceeded and client-cancelled ones, against the real ditserve coordinator and worker process
# around the fake engine (tests/support/fake_engine.h, no model needed), sampling the coordinator's and
# the workers' RSS. Prints the JSON of tests/soak_client and the coordinator's growth per request after
# warm-up; writes it to ${OUT:-build/soak}/soak.json.
#   scripts/soak.sh [REQUESTS] [CONCURRENCY]        (defaults 10000, 8)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
C=${2:-8}
BUILD=${DITSERVE_BUILD_DIR:-build}
OUT=${OUT:-$BUILD/soak}
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
[ -f "$BUILD/build.ninja" ] || scripts/build.sh "$BUILD" >/dev/null
cmake --build "$BUILD" --target ditserve fake_worker soak_client -j "${DITSERVE_JOBS:-2}" >/dev/null

mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/ditserve-soak-XXXXXX)
trap 'kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
"$BUILD/tests/soak_client" --write-fake-model "$WORK" fake-video
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
GRPC=127.0.0.1:$(port)
cat > "$WORK/config.json" <<JSON
{"server": {"grpc_address": "$GRPC", "metrics_address": "127.0.0.1:$(port)", "queue_capacity": 64,
            "worker_binary": "$PWD/$BUILD/tests/fake_worker", "debug_step_delay_ms": 5, "runtime_dir": "$WORK"},
 "models": [{"name": "fake-video", "path": "$WORK"}],
 "groups": [{"model": "fake-video", "count": 2, "devices": "cpu"}]}
JSON
"$BUILD/server/ditserve" --config "$WORK/config.json" --log-level warn > "$WORK/ditserve.log" 2>&1 &
PID=$!
for _ in $(seq 100); do
  "$BUILD/server/ditctl" --server "$GRPC" health --timeout 1 >/dev/null 2>&1 && break
  sleep 0.2
done
"$BUILD/tests/soak_client" --server "$GRPC" --coordinator-pid "$PID" --requests "$N" --concurrency "$C" \
  --sample-every $((N / 20)) > "$OUT/soak.json"
cat "$OUT/soak.json"
python3 - "$OUT/soak.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
s = d["samples"]
warm = s[len(s) // 5]  # after a fifth of the requests: allocator pools, gRPC and metric series warmed up
last = s[-1]
per = (last["coordinator_rss_kb"] - warm["coordinator_rss_kb"]) * 1024 / max(1, last["requests"] - warm["requests"])
print(f"coordinator RSS: start {s[0]['coordinator_rss_kb']/1024:.1f} MiB, after warm-up {warm['coordinator_rss_kb']/1024:.1f} MiB,"
      f" end {last['coordinator_rss_kb']/1024:.1f} MiB: {per:.0f} B/request after warm-up")
print("workers RSS start / end (MiB):", [round(k / 1024, 1) for k in s[0]["worker_rss_kb"]], "/",
      [round(k / 1024, 1) for k in last["worker_rss_kb"]])
print(f"{d['requests']} requests in {d['seconds']} s:", d["status"])
PY
