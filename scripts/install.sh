#!/usr/bin/env bash
# Idempotent install: Debian packages for the C++ build, and the pinned Python venv (.venv) that
# provides libtorch and the export/reference tooling.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git curl python3-venv
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libspdlog-dev nlohmann-json3-dev libstb-dev
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev
  libgtest-dev libgmock-dev prometheus-cpp-dev libcli11-dev zlib1g-dev libicu-dev
  libgloo-dev
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

VENV=${DITSERVE_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
stamp="$VENV/.requirements.sha"
want=$(sha256sum scripts/requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -r scripts/requirements.txt
  echo "$want" > "$stamp"
fi
# FP8 attention's cuDNN frontend headers (build-time only; a build without them has no FP8 attention on CUDA).
scripts/fetch_cudnn_frontend.sh || echo "install: no cuDNN frontend headers: FP8 attention will be off on CUDA"
echo "install: ok ($("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
