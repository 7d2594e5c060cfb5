#!/usr/bin/env bash
# One command from a fresh clone to a generated image: install, build, make + export a tiny random-weight
# FLUX model, start ditserve (coordinator + one worker group of 2 CPU ranks running ring attention over
# Gloo), generate a PNG with ditctl (First Block Cache on),
# show status and metrics, then shut the server down with SIGTERM.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
scripts/build.sh build
.venv/bin/python scripts/make_test_models.py --out build/models

mkdir -p out
GRPC_PORT=${GRPC_PORT:-50051}
METRICS_PORT=${METRICS_PORT:-9090}
build/server/ditserve --config configs/quickstart.json \
  --grpc-address "127.0.0.1:$GRPC_PORT" --metrics-address "127.0.0.1:$METRICS_PORT" > out/ditserve.log 2>&1 &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null || true' EXIT
export DITSERVE_ADDR="127.0.0.1:$GRPC_PORT"
for _ in $(seq 1 600); do
  build/server/ditctl health >/dev/null 2>&1 && break
  kill -0 $SERVER 2>/dev/null || { cat out/ditserve.log; echo "ditserve exited" >&2; exit 1; }
  sleep 0.2
done
build/server/ditctl models
build/server/ditctl generate --prompt "a red fox in fresh snow, golden hour" --seed 42 \
  --width 128 --height 128 --steps 8 --cache-threshold 0.3 --out out/quickstart.png
build/server/ditctl status
echo "--- /metrics (excerpt)"
curl -s "http://127.0.0.1:$METRICS_PORT/metrics" | grep -E '^ditserve_(requests_total|queue_depth|group_up)' || true
kill -TERM $SERVER
wait $SERVER
trap - EXIT
echo "quickstart: ok -> out/quickstart.png (server log: out/ditserve.log)"
