#!/usr/bin/env bash
# The cuDNN frontend's C++ headers (header-only; FP8 attention's graph API, engine/runtime/cudnn_fp8_sdpa.cc)
# from the nvidia-cudnn-frontend wheel on PyPI, unpacked into DEST/include. The headers call the cuDNN 9 that
# the torch wheel ships. Without them the build has no FP8 attention on CUDA (the engine refuses
# fp8_attention groups there); nothing else depends on them.
# Usage: scripts/fetch_cudnn_frontend.sh [DEST]   (default .deps/cudnn_frontend; a no-op when present)
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=1.32.0
DEST=${1:-.deps/cudnn_frontend}
[ "$(cat "$DEST/VERSION" 2>/dev/null)" = "$VERSION" ] && [ -f "$DEST/include/cudnn_frontend.h" ] && exit 0
PY=${DITSERVE_VENV:-.venv}/bin/python
[ -x "$PY" ] || PY=python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Any CPython tag will do: only the headers are taken.
"$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: --python-version 3.12 \
  --platform manylinux_2_28_x86_64 -d "$tmp" "nvidia-cudnn-frontend==$VERSION"
rm -rf "$DEST"
mkdir -p "$DEST"
"$PY" - "$tmp"/*.whl "$DEST" <<'PYEOF'
import sys, zipfile
whl, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    names = [n for n in z.namelist() if n.startswith("include/")]
    assert any(n == "include/cudnn_frontend.h" for n in names), "no include/cudnn_frontend.h in " + whl
    z.extractall(dest, names)
PYEOF
echo "$VERSION" > "$DEST/VERSION"
echo "fetch_cudnn_frontend: $DEST/include ($(find "$DEST/include" -name '*.h' | wc -l) headers, $VERSION)"
