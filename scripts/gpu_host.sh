#!/usr/bin/env bash
# Builds ditserve and runs its GPU tests and benchmarks on an air-gapped GPU host (Ubuntu 24.04, CUDA 13
# toolkit, Python 3.12 with torch 2.11; no network, no gRPC/protobuf/... dev packages), from the bundle
# that scripts/gpu_bundle.sh made on a networked Debian 12 machine (.gpu_bundle/ in the repo root).
#
# Usage: scripts/gpu_host.sh [setup|build|test|bench|all|env]...      (no argument: all)
#   setup  unpack .gpu_bundle/sysroot.tar.xz into $DITSERVE_SYSROOT and relocate its CMake/pkg-config
#          files; install .gpu_bundle/wheels into $DITSERVE_SITE (never into the host venv). Idempotent;
#          every other action does it first.
#   build  configure (Ninja, Release, CUDA arch 9.0) and build into $DITSERVE_GPU_BUILD
#   test   ctest -L gpu in the build dir (lists the tests first; fails if there are none)
#   bench  scripts/bench_gpu.sh, if it exists, with the variables below exported
#   all    build test bench
#   env    print `export ...` lines for the variables below: eval "$(scripts/gpu_host.sh env)"
#
# Settings (environment, all optional):
#   DITSERVE_HOST_PYTHON   Python with torch (default: the first of python3, /opt/torch/.venv/bin/python3,
#                          .venv/bin/python, /usr/bin/python3 that imports torch)
#   DITSERVE_SYSROOT       default /tmp/ditserve-sysroot
#   DITSERVE_SITE          default /tmp/ditserve-site
#   DITSERVE_GPU_BUILD     build dir, default build-gpu
#   DITSERVE_JOBS          build parallelism, default $(nproc)
#   DITSERVE_BUILD_TYPE    default Release
#   DITSERVE_BUILD_TARGETS space-separated targets to build (default: all)
#   DITSERVE_CMAKE_ARGS    extra cmake configure arguments (word-split)
#   DITSERVE_CTEST_ARGS    extra ctest arguments (word-split), e.g. "-R kernels"
#   DITSERVE_BENCH_ARGS    arguments for scripts/bench_gpu.sh (word-split; default none)
#   DITSERVE_GPU_CXXFLAGS  default "-include cstdint" (gcc 13 no longer pulls <cstdint> in transitively;
#                          bookworm's headers were built with gcc 12)
#   DITSERVE_SKIP_WHEELS=1 do not install the wheels (e.g. a Python other than 3.12)
#
# Exported to ctest and to scripts/bench_gpu.sh:
#   DITSERVE_BUILD_DIR     absolute build dir (binaries in $DITSERVE_BUILD_DIR/server, tests in .../tests)
#   DITSERVE_PYTHON        $DITSERVE_SITE/bin/ditserve-python: the host Python with the wheels first on
#                          its path (also what CMake's DITSERVE_PYTHON is set to)
#   DITSERVE_HOST_PYTHON   the host Python itself (for torchrun: $DITSERVE_HOST_PYTHON -m torch.distributed.run)
#   DITSERVE_SITE, PYTHONPATH  the wheels' directory, prepended to PYTHONPATH
#   LD_LIBRARY_PATH        $DITSERVE_SYSROOT/runlib prepended: the bundle's shared libraries that the host
#                          lacks (grpc, protobuf, absl, icu72, ...), never ones it has (libssl, libz)
#   NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1   unless already set
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
REPO=$(pwd)
BUNDLE=$REPO/.gpu_bundle
SYSROOT=${DITSERVE_SYSROOT:-/tmp/ditserve-sysroot}
SITE=${DITSERVE_SITE:-/tmp/ditserve-site}
BUILD=${DITSERVE_GPU_BUILD:-build-gpu}
[[ $BUILD = /* ]] || BUILD=$REPO/$BUILD
JOBS=${DITSERVE_JOBS:-$(nproc)}
ARCH_LIB=usr/lib/x86_64-linux-gnu
WRAP=$SITE/bin/ditserve-python
for d in "$SYSROOT" "$SITE"; do   # both are deleted and recreated when the bundle changes
  case ${d%/} in ""|/|/usr|/tmp|/opt|"$HOME"|"$REPO") echo "gpu_host: refusing to use $d" >&2; exit 1 ;; esac
done

log() { echo "gpu_host: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

declare -A RESULT=()
STEPS=()
TESTS_RUN="" TESTS_SUMMARY=""
# shellcheck disable=SC2317  # (run by the EXIT trap)
summary() {
  local rc=$? s
  ((${#STEPS[@]})) || return
  echo "================ gpu_host summary ================"
  echo "device:  $(nvidia-smi -L 2>/dev/null | paste -sd";" | grep . || echo "no GPU seen (nvidia-smi)")"
  echo "dir:     $BUILD"
  local built=() b
  for b in server/ditserve server/ditserve-worker server/ditctl engine/libditserve_runtime.so models/libditserve_models.so engine/facade/libditserve_engine.so kernels/libditserve_kernels.a; do
    [ -e "$BUILD/$b" ] && built+=("${b##*/}")
  done
  b=$(find "$BUILD/tests" -maxdepth 1 -type f -name '*_test' 2>/dev/null | wc -l)
  echo "built:   ${built[*]:-nothing} (+ $b test binaries)"
  for s in "${STEPS[@]}"; do printf '%-8s %s\n' "$s:" "${RESULT[$s]:-not run (an earlier step failed)}"; done
  [ -z "$TESTS_RUN" ] || printf 'gpu tests: %s\n%s\n' "$TESTS_SUMMARY" "$TESTS_RUN"
  echo "exit:    $rc"
}
trap summary EXIT

# --- setup ------------------------------------------------------------------
find_python() {
  local c
  for c in ${DITSERVE_HOST_PYTHON:-} python3 /opt/torch/.venv/bin/python3 "$REPO/.venv/bin/python" /usr/bin/python3; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import torch' >/dev/null 2>&1; then
      command -v "$c"; return 0
    fi
  done
  return 1
}

unpack_sysroot() {
  local tarball=$BUNDLE/sysroot.tar.xz want stamp=$SYSROOT/.bundle-stamp
  [ -f "$tarball" ] || die "$tarball missing: run scripts/gpu_bundle.sh on a networked Debian 12 machine first"
  want="$(sha256sum "$tarball" | cut -c1-64) $SYSROOT"
  [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return 0
  log "unpacking the sysroot into $SYSROOT"
  rm -rf "${SYSROOT:?}"; mkdir -p "$SYSROOT" || die "cannot create $SYSROOT"
  if command -v xz >/dev/null; then
    tar -C "$SYSROOT" -xJf "$tarball"
  else  # minimal images lack xz-utils: Python's lzma decompresses
    "$PY" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' "$tarball" |
      tar -C "$SYSROOT" -xf -
  fi || die "cannot unpack $tarball"
  # Debian's CMake and pkg-config files name /usr: point them into the prefix (a path-initial /usr only,
  # and only in the prefix's own files).
  find "$SYSROOT/usr" -type f \( -name '*.cmake' -o -name '*.pc' \) -print0 |
    SYSROOT="$SYSROOT" xargs -0 perl -pi -e 's{(?:(?<=-[IL])|(?<![\w./-]))/usr(?![\w.-])}{$ENV{SYSROOT}/usr}g' ||
    die "relocating the sysroot's CMake files failed"
  # runlib: the prefix's shared libraries whose soname the host does not have (LD_LIBRARY_PATH at run
  # time). Libraries the host has (libssl3, zlib, ...) stay the host's.
  local cache f n host
  cache=$( (ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null) | grep 'x86-64')
  mkdir -p "$SYSROOT/runlib"
  for f in "$SYSROOT/$ARCH_LIB"/lib*.so.*; do
    n=""
    if command -v readelf >/dev/null; then   # by soname; without readelf, under every name
      [ -L "$f" ] && continue
      n=$(readelf -d "$f" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
    fi
    n=${n:-$(basename "$f")}
    host=$(awk -v n="$n" '$1 == n { print $NF; exit }' <<<"$cache")
    [ -n "$host" ] && [ -s "$host" ] && continue
    ln -sfn "../$ARCH_LIB/$(basename "$f")" "$SYSROOT/runlib/$n"
  done
  echo "$want" > "$stamp"
}

install_wheels() {
  local want stamp=$SITE/.bundle-stamp
  if [ "${DITSERVE_SKIP_WHEELS:-0}" = 1 ]; then
    log "DITSERVE_SKIP_WHEELS=1: not installing the wheels"
  else
    "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' ||
      die "the wheels are for CPython 3.12, $PY is $("$PY" -V 2>&1) (DITSERVE_SKIP_WHEELS=1 to go on without them)"
    want="$(cd "$BUNDLE/wheels" && ls -l -- *.whl | sha256sum | cut -c1-64) $PY"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
      log "installing $(ls "$BUNDLE"/wheels/*.whl | wc -l) wheels into $SITE"
      rm -rf "$SITE" && mkdir -p "$SITE"
      if "$PY" -m pip --version >/dev/null 2>&1; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --disable-pip-version-check \
          --target "$SITE" "$BUNDLE"/wheels/*.whl || die "pip install --target $SITE failed"
      else  # no pip in that Python: a wheel is a zip of site-packages content
        local w; for w in "$BUNDLE"/wheels/*.whl; do "$PY" -m zipfile -e "$w" "$SITE" || die "unzip $w"; done
      fi
      echo "$want" > "$stamp"
    fi
  fi
  mkdir -p "$SITE/bin"
  cat > "$WRAP" <<EOF
#!/bin/sh
# The host Python with the GPU bundle's wheels first on its path (written by scripts/gpu_host.sh).
PYTHONPATH="$SITE\${PYTHONPATH:+:\$PYTHONPATH}"
export PYTHONPATH
exec "$PY" "\$@"
EOF
  chmod +x "$WRAP"
}

setup() {
  [ -d "$BUNDLE" ] || die "$BUNDLE missing: run scripts/gpu_bundle.sh on a networked Debian 12 machine, then carry .gpu_bundle/ here"
  PY=$(find_python) || die "no Python that imports torch (set DITSERVE_HOST_PYTHON)"
  unpack_sysroot
  install_wheels
  local pybin; pybin=$(dirname "$PY")
  # cmake/ninja may come as pip packages in the torch venv; nvcc from the CUDA toolkit.
  command -v cmake >/dev/null || PATH=$PATH:$pybin
  command -v ninja >/dev/null || PATH=$PATH:$pybin
  if ! command -v nvcc >/dev/null; then
    local d; for d in /usr/local/cuda/bin /usr/local/cuda-13*/bin; do [ -x "$d/nvcc" ] && { PATH=$PATH:$d; break; }; done
  fi
  export PATH
  export DITSERVE_BUILD_DIR=$BUILD DITSERVE_PYTHON=$WRAP DITSERVE_HOST_PYTHON=$PY DITSERVE_SITE=$SITE
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
  export LD_LIBRARY_PATH="$SYSROOT/runlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-0} TORCH_SYMM_MEM_DISABLE_MULTICAST=${TORCH_SYMM_MEM_DISABLE_MULTICAST:-1} \
         NVSHMEM_DISABLE_NVLS=${NVSHMEM_DISABLE_NVLS:-1}
}

# --- build ------------------------------------------------------------------
build() {
  local torch_prefix nvcc
  command -v cmake >/dev/null || { log "cmake not found"; return 1; }
  command -v ninja >/dev/null || { log "ninja not found"; return 1; }
  torch_prefix=$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)') || return 1
  nvcc=$(command -v nvcc || true)
  log "python: $PY ($("$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "devices", torch.cuda.device_count())' 2>/dev/null))"
  log "cmake $(cmake --version | head -1 | awk '{print $3}'), ninja $(ninja --version), $(c++ --version | head -1), nvcc: ${nvcc:-NONE (kernels and GPU tests will not be built)}"
  local args=(
    -S "$REPO" -B "$BUILD" -G Ninja
    -DCMAKE_BUILD_TYPE="${DITSERVE_BUILD_TYPE:-Release}"
    -DDITSERVE_PYTHON="$WRAP"
    -DCMAKE_PREFIX_PATH="$SYSROOT/usr;$torch_prefix"
    -DTORCH_CUDA_ARCH_LIST=9.0
    -DCMAKE_MAKE_PROGRAM="$(command -v ninja)"
    -DCMAKE_CXX_FLAGS="${DITSERVE_GPU_CXXFLAGS--include cstdint}"
  )
  # CMake 4 refuses policy versions < 3.5, which some of Debian's config files still name.
  [ "$(cmake --version | head -1 | awk '{print $3}' | cut -d. -f1)" -lt 4 ] || args+=(-DCMAKE_POLICY_VERSION_MINIMUM=3.5)
  [ -z "$nvcc" ] || args+=(-DCMAKE_CUDA_COMPILER="$nvcc")
  # FP8 attention's cuDNN frontend headers (a checkout's own .deps/ otherwise, or none: no FP8 attention)
  [ ! -f "$BUNDLE/cudnn_frontend/include/cudnn_frontend.h" ] ||
    args+=(-DCUDNN_FRONTEND_INCLUDE_DIR="$BUNDLE/cudnn_frontend/include")
  # shellcheck disable=SC2206
  args+=(${DITSERVE_CMAKE_ARGS:-})
  # A new sysroot (or one unpacked elsewhere) invalidates the paths cached by an earlier configure.
  if [ "$(cat "$BUILD/.gpu_host-stamp" 2>/dev/null)" != "$(cat "$SYSROOT/.bundle-stamp")" ]; then
    rm -f "$BUILD/CMakeCache.txt"
  fi
  cmake "${args[@]}" || return 1
  cp "$SYSROOT/.bundle-stamp" "$BUILD/.gpu_host-stamp"
  local targets=()
  for t in ${DITSERVE_BUILD_TARGETS:-}; do targets+=(--target "$t"); done
  cmake --build "$BUILD" -j "$JOBS" "${targets[@]}"
}

# --- test -------------------------------------------------------------------
gpu_test() {
  [ -f "$BUILD/CTestTestfile.cmake" ] || { log "no build in $BUILD: run build first"; return 1; }
  log "GPU tests (ctest -L gpu):"
  ctest --test-dir "$BUILD" -L gpu -N | sed -n 's/^ *Test *#[0-9]*: /  /p' >&2
  local logf=$BUILD/gpu_host-ctest.log rc
  # shellcheck disable=SC2086
  ctest --test-dir "$BUILD" -L gpu --output-on-failure --no-tests=error ${DITSERVE_CTEST_ARGS:-} 2>&1 | tee "$logf"
  rc=${PIPESTATUS[0]}
  TESTS_SUMMARY=$(grep -E 'tests passed|tests failed' "$logf" | tail -1)
  TESTS_RUN=$(grep -E '^ *[0-9]+/[0-9]+ Test +#' "$logf" | sed -E 's/^ *[0-9]+\/[0-9]+ Test +#[0-9]+: /  /; s/ \.+/ /')
  return "$rc"
}

# --- bench ------------------------------------------------------------------
bench() {
  if [ ! -f "$REPO/scripts/bench_gpu.sh" ]; then
    log "scripts/bench_gpu.sh not present: nothing to benchmark"
    RESULT[bench]="skipped (no scripts/bench_gpu.sh)"
    return 0
  fi
  # shellcheck disable=SC2086
  bash "$REPO/scripts/bench_gpu.sh" ${DITSERVE_BENCH_ARGS:-}
}

print_env() {
  local v
  for v in DITSERVE_BUILD_DIR DITSERVE_PYTHON DITSERVE_HOST_PYTHON DITSERVE_SITE PYTHONPATH LD_LIBRARY_PATH PATH \
           NCCL_NVLS_ENABLE TORCH_SYMM_MEM_DISABLE_MULTICAST NVSHMEM_DISABLE_NVLS; do
    printf 'export %s=%q\n' "$v" "${!v}"
  done
}

# --- main -------------------------------------------------------------------
actions=("$@")
((${#actions[@]})) || actions=(all)
expanded=()
for a in "${actions[@]}"; do
  case $a in
    all) expanded+=(build test bench) ;;
    setup|build|test|bench|env) expanded+=("$a") ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown action '$a' (setup|build|test|bench|all|env)" ;;
  esac
done

setup
failed=0 build_failed=0
for a in "${expanded[@]}"; do
  case $a in
    setup) continue ;;
    env) print_env; continue ;;
  esac
  STEPS+=("$a")
  if ((build_failed)) && [ "$a" != build ]; then continue; fi
  log "=== $a ==="
  case $a in build) build ;; test) gpu_test ;; bench) bench ;; esac
  rc=$?
  if ((rc)); then
    RESULT[$a]="FAILED (exit $rc)"; failed=1
    [ "$a" = build ] && build_failed=1
  else
    RESULT[$a]=${RESULT[$a]:-ok}
  fi
done
exit "$failed"
