#!/usr/bin/env bash
# Image builder step: the venv that provides libtorch (torch's wheel, pinned in scripts/requirements.txt)
# and nothing else of the Python tooling (export/reference tools are not needed to build or serve).
# torch's CMake config enables the CUDA language, so it needs an nvcc even for a CPU image: where the
# base image has none (a plain Debian builder), NVIDIA's CUDA wheels of the version torch pins
# (cuda-toolkit[nvcc,...]) are laid out as /usr/local/cuda.
# Usage: docker/install_torch.sh VENV
set -euo pipefail
VENV=$1
cd "$(dirname "$0")/.."
torch_pin=$(grep -E '^torch==' scripts/requirements.txt)
# A CA bundle handed in as a build secret (Dockerfile) replaces pip's own.
if [ -s /run/secrets/ca_certificates ]; then export PIP_CERT=/run/secrets/ca_certificates; fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q "$torch_pin"
if command -v nvcc > /dev/null; then
  echo "install_torch: $torch_pin, toolkit $(command -v nvcc)"; exit 0
fi
# The same cuda-toolkit release torch's wheel requires (its Requires-Dist pins one version).
ctk=$("$VENV/bin/python" - <<'PY'
import importlib.metadata as m, re
for r in m.requires("torch") or []:
    hit = re.match(r"cuda-toolkit\[[^\]]*\]\s*(==\s*[\w.]+)", r)
    if hit:
        print(hit.group(1).replace(" ", ""))
        break
PY
)
[ -n "$ctk" ] || { echo "install_torch: torch names no cuda-toolkit version" >&2; exit 1; }
"$VENV/bin/pip" install -q "cuda-toolkit[nvcc,crt,cccl,nvvm]$ctk"
root=$(echo "$VENV"/lib/python3*/site-packages/nvidia/cu[0-9]*)
# A toolkit layout for CMake's FindCUDA/FindCUDAToolkit: unversioned library names, lib64.
for so in "$root"/lib/lib*.so.*; do
  base=${so%%.so.*}.so
  [ -e "$base" ] || ln -s "$(basename "$so")" "$base"
done
[ -e "$root/lib64" ] || ln -s lib "$root/lib64"
ln -sfn "$root" /usr/local/cuda
echo "install_torch: $torch_pin, toolkit from wheels cuda-toolkit$ctk at /usr/local/cuda -> $root"
