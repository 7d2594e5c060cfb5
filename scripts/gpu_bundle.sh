#!/usr/bin/env bash
# Prepares .gpu_bundle/ for an air-gapped GPU host, where scripts/gpu_host.sh builds and tests ditserve
# with no network. Runs on a networked Debian 12 (bookworm) machine; needs apt-get, dpkg-deb, python3
# with pip (PyPI reachable), xz. Root is not needed (apt state goes to a private temp dir).
#
#   .gpu_bundle/sysroot.tar.xz  bookworm packages to BUILD and RUN ditserve (gRPC, protobuf, spdlog, fmt,
#                               nlohmann_json, stb, prometheus-cpp, CLI11, ICU, GTest, gloo headers, libx264
#                               and their runtime closure), `dpkg -x`-ed into one prefix (usr/...) and trimmed,
#                               plus FFmpeg built here from bookworm's source package with only what ditserve
#                               uses (see build_ffmpeg: Debian's binary FFmpeg would add 115 packages, 56 MiB).
#   .gpu_bundle/wheels/         CPython 3.12 x86_64 wheels of the export/reference tooling (diffusers,
#                               transformers 4.x, ...) and the reference systems (para-attn), no torch/numpy.
#   .gpu_bundle/cudnn_frontend/ the cuDNN frontend's C++ headers (FP8 attention; scripts/fetch_cudnn_frontend.sh).
#   .gpu_bundle/MANIFEST.txt    what is in it (package versions, wheels).
#
# Usage: scripts/gpu_bundle.sh        env: DITSERVE_XZ_THREADS (default 0 = all cores), DITSERVE_JOBS
#                                          (FFmpeg build parallelism, default nproc)
# Also needs a C compiler, make and pkg-config (scripts/install.sh installs them) and deb-src access to the
# mirror apt already uses (the source lines are made from its binary ones).
# The whole folder must stay under ~60 MiB: the device tool carries at most 64 MiB with the working tree.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=.gpu_bundle
LIMIT_MIB=60
die() { echo "gpu_bundle: $*" >&2; exit 1; }

# Debian packages the build needs (scripts/install.sh's list minus the toolchain, FFmpeg (built below),
# and what an Ubuntu 24.04 CUDA host has). Their dependency closure is computed below.
ROOTS=(
  libgrpc++-dev libgrpc-dev protobuf-compiler-grpc protobuf-compiler libprotobuf-dev
  libspdlog-dev libfmt-dev nlohmann-json3-dev libstb-dev prometheus-cpp-dev libcli11-dev
  libicu-dev libgtest-dev libgmock-dev libgloo-dev zlib1g-dev
  pkgconf        # gRPC's CMake config finds re2 through pkg-config only; CMake finds FFmpeg with it
  libx264-164    # the H.264 encoder behind FFmpeg's libx264 wrapper
)
# Only to build FFmpeg here, in a scratch prefix: x264's headers, pkg-config file and library, and the assembler.
FFMPEG_BUILD_DEBS=(libx264-dev libx264-164 nasm)
# Never fetched nor followed: the base system (Ubuntu 24.04 has newer copies), compilers, and
# dependencies of -dev packages that ditserve does not use (gloo's redis/ibverbs transports, catch2,
# googletest sources, ICU tools).
STOP=(
  libc6 libc6-dev libc-dev-bin libc-bin linux-libc-dev libcrypt1 libcrypt-dev libgcc-s1 libstdc++6
  gcc-12-base debconf dpkg perl-base tzdata libsystemd0 liblzma5 libzstd1 libbz2-1.0 libselinux1
  libnsl2 libnsl-dev libtirpc3 libtirpc-dev
  catch2 googletest icu-devtools libgloo0 libhiredis-dev libibverbs-dev
)
# Fetched, dependencies not followed: prometheus-cpp's CMake config does find_dependency(CURL) (for
# its push library, which ditserve does not link), so libcurl only has to be findable.
LEAF=(libcurl4 libcurl4-openssl-dev)

# Wheels (CPython 3.12, manylinux x86_64). Pins follow scripts/requirements.txt (the CPU CI venv);
# the rest are what the host venv (torch 2.11, transformers 5.x) lacks or has in versions too new for
# diffusers 0.34 / transformers 4.56.
WHEELS=(
  diffusers==0.34.0 transformers==4.56.2 tokenizers==0.22.1 huggingface_hub==0.36.2
  safetensors==0.6.2 accelerate==1.10.1 sentencepiece==0.2.1 protobuf==5.29.5
  importlib_metadata==10.2.0 lazy_importer==0.1.0
)
# What the wheels need that the host's torch venv already has (checked against the wheels' metadata).
HOST_PY=(torch numpy pillow packaging psutil pyyaml filelock fsspec hf-xet requests tqdm typing-extensions regex zipp)
SDIST_WHEELS=(para-attn==0.3.38)   # published as an sdist only (pure Python): built into a wheel here

# --- checks -----------------------------------------------------------------
. /etc/os-release
[ "${VERSION_CODENAME:-}" = bookworm ] || die "needs Debian 12 (bookworm), this is ${PRETTY_NAME:-unknown}"
for t in apt-get apt-cache dpkg-deb dpkg-source xz tar cc make pkg-config; do
  command -v $t >/dev/null || die "$t not found (scripts/install.sh installs the build tools)"
done
PY=python3
$PY -m pip --version >/dev/null 2>&1 || PY=.venv/bin/python
$PY -m pip --version >/dev/null 2>&1 || die "no pip: install python3-pip or run scripts/install.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_bundle.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
rm -rf "$OUT"
mkdir -p "$OUT/wheels" "$WORK/apt/lists/partial" "$WORK/apt/cache/archives/partial" "$WORK/debs" "$WORK/root"

# --- Debian packages ------------------------------------------------------------
APT=(-q -o Dir::State::Lists="$WORK/apt/lists" -o Dir::Cache="$WORK/apt/cache"
     -o APT::Architecture=amd64 -o APT::Architectures=amd64 -o Debug::NoLocking=true
     -o APT::Sandbox::User="$(id -un)")
echo "gpu_bundle: apt-get update (private lists)"
apt-get "${APT[@]}" update >/dev/null

PKGS=$(python3 - "${ROOTS[*]}" "${STOP[*]}" "${LEAF[*]}" "${APT[@]}" <<'EOF'
# Breadth-first dependency closure (Depends/PreDepends, first of each alternative), stopping at STOP.
import re, subprocess, sys
roots, stop, leaf, apt = sys.argv[1].split(), set(sys.argv[2].split()), set(sys.argv[3].split()), sys.argv[4:]
seen, order, todo = set(), [], roots
while todo:
    batch = [p for p in dict.fromkeys(todo) if p not in seen and p not in stop]
    todo = []
    if not batch:
        break
    out = subprocess.run(["apt-cache", *apt, "depends", "--no-recommends", "--no-suggests", "--no-conflicts",
                          "--no-breaks", "--no-replaces", "--no-enhances", *batch],
                         capture_output=True, text=True, check=True).stdout
    cur, alt = None, False
    for line in out.splitlines():
        if not line.startswith(" "):
            cur = line.strip()
            if cur in seen:
                cur = None
                continue
            seen.add(cur); order.append(cur); alt = False
            continue
        m = re.match(r"\s+(\|?)(?:Pre)?Depends: (\S+)", line)
        if not m or cur is None or cur in leaf:
            continue
        bar, dep = m.groups()
        if not alt and not dep.startswith("<"):  # <virtual>: provided by a package already listed
            todo.append(dep)
        alt = bool(bar)
missing = set(roots) - seen
if missing:
    sys.exit("unknown packages: " + " ".join(sorted(missing)))
print(" ".join(order))
EOF
)
echo "gpu_bundle: $(wc -w <<<"$PKGS") packages: $PKGS"
# shellcheck disable=SC2086  # one word per package
(cd "$WORK/debs" && apt-get "${APT[@]}" download $PKGS 2>&1 | { grep -v '^W: Download is performed unsandboxed' || true; } | tail -1)

{
  echo "ditserve GPU bundle, made $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname) from $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo; echo "[debian bookworm packages, dpkg -x into sysroot.tar.xz]"
} > "$OUT/MANIFEST.txt"
for f in "$WORK"/debs/*.deb; do
  dpkg-deb -x "$f" "$WORK/root"
  dpkg-deb -W --showformat='${Package} ${Version}\n' "$f" >> "$OUT/MANIFEST.txt"
done

# --- FFmpeg ----------------------------------------------------------------------
# ditserve calls FFmpeg for one thing: H.264 MP4s through libx264, the mp4 muxer and swscale (engine/io/mp4.cc);
# its tests decode them back (h264 decoder, mov demuxer). Debian's libavcodec59/libavformat59/libavutil57 link
# every codec, container and hardware API Debian enables (x265, aom, svt-av1, rsvg, gnutls, X11, VA-API, ...):
# 115 more packages, 56 MiB of .debs, beyond the carry budget. Bookworm's own FFmpeg source (same version and
# patches as its binaries), configured with only the parts above, gives the same headers, sonames and
# pkg-config files in ~2 MiB. GPL (libx264), as Debian's build.
build_ffmpeg() {
  local src=$WORK/ffmpeg-src dev=$WORK/ffmpeg-dev version
  mkdir -p "$WORK/ffmpeg-apt" "$dev"
  # deb-src lines for the mirrors apt already uses (private source list; the system's is not touched).
  # shellcheck disable=SC2016  # $(REPO_URI) ... are apt's format fields
  apt-get "${APT[@]}" indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' 'Identifier: Packages' |
    sort -u | awk '{ print "deb-src " $1 " " $2 " " $3 }' > "$WORK/ffmpeg-apt/sources.list"
  [ -s "$WORK/ffmpeg-apt/sources.list" ] || die "no apt sources to derive deb-src lines from"
  local SRC_APT=("${APT[@]}" -o Dir::Etc::SourceList="$WORK/ffmpeg-apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent
                 -o Dir::State::Lists="$WORK/ffmpeg-apt/lists")
  mkdir -p "$WORK/ffmpeg-apt/lists/partial"
  apt-get "${SRC_APT[@]}" update >/dev/null || die "apt-get update of the deb-src lines failed"
  (cd "$WORK/ffmpeg-apt" && apt-get "${SRC_APT[@]}" source --download-only ffmpeg 2>&1 | tail -1) ||
    die "cannot download FFmpeg's source package"
  # The .dsc's signature cannot be checked without debian-keyring (gpgv warns); apt already checked its hash
  # against the signed Sources index, and dpkg-source checks the tarballs against the .dsc.
  dpkg-source -x "$WORK"/ffmpeg-apt/ffmpeg_*.dsc "$src" >/dev/null 2>"$WORK/dpkg-source.log" ||
    die "cannot unpack FFmpeg's source package: $(cat "$WORK/dpkg-source.log")"
  version=$(basename "$WORK"/ffmpeg-apt/ffmpeg_*.dsc .dsc); version=${version#ffmpeg_}
  (cd "$WORK/ffmpeg-apt" && apt-get "${APT[@]}" download "${FFMPEG_BUILD_DEBS[@]}" 2>&1 |
    { grep -v '^W: Download is performed unsandboxed' || true; } | tail -1)
  for f in "$WORK"/ffmpeg-apt/*.deb; do dpkg-deb -x "$f" "$dev"; done
  echo "gpu_bundle: building FFmpeg $version (libx264, mp4, swscale)"
  (cd "$src" &&
    PKG_CONFIG_PATH=$dev/usr/lib/x86_64-linux-gnu/pkgconfig PKG_CONFIG_SYSROOT_DIR=$dev ./configure \
      --prefix=/usr --libdir=/usr/lib/x86_64-linux-gnu --shlibdir=/usr/lib/x86_64-linux-gnu \
      --incdir=/usr/include/x86_64-linux-gnu --enable-shared --disable-static --enable-gpl --disable-debug \
      --disable-programs --disable-doc --disable-everything --disable-autodetect --disable-network \
      --disable-avdevice --disable-avfilter --disable-swresample --disable-postproc --enable-pthreads \
      --enable-libx264 --enable-encoder=libx264 --enable-decoder=h264 --enable-parser=h264 \
      --enable-muxer=mp4 --enable-demuxer=mov --x86asmexe="$dev/usr/bin/nasm" > "$WORK/ffmpeg-configure.log" 2>&1 &&
    nice make -j"${DITSERVE_JOBS:-$(nproc)}" > "$WORK/ffmpeg-make.log" 2>&1 &&
    make install DESTDIR="$WORK/root" > /dev/null 2>&1) ||
    die "FFmpeg build failed: $(tail -5 "$WORK"/ffmpeg-*.log "$src/ffbuild/config.log" 2>/dev/null)"
  # The build's x264 location leaks into Libs.private (static linking only): name the prefix's instead.
  sed -i "s|$dev/usr|/usr|g" "$WORK"/root/usr/lib/x86_64-linux-gnu/pkgconfig/lib{avcodec,avformat,avutil,swscale}.pc
  rm -rf "$WORK/root/usr/share/ffmpeg"   # examples
  echo "ffmpeg $version (source; built with only: libx264 encoder, h264 decoder and parser, mp4 muxer, mov demuxer, swscale)" \
    >> "$OUT/MANIFEST.txt"
}
build_ffmpeg

# --- trim and make the prefix self-contained --------------------------------
R=$WORK/root
# usr-merge: bookworm still ships some libraries under /lib.
if [ -d "$R/lib" ]; then
  cp -a "$R/lib/." "$R/usr/lib/" && rm -rf "${R:?}/lib"
fi
# Absolute symlinks (libz.so -> /lib/x86_64-linux-gnu/libz.so.1.2.13) become relative ones in the prefix.
find "$R" -type l -lname '/*' -print0 | while IFS= read -r -d '' l; do
  t=$(readlink "$l"); t=${t#/usr}; ln -sfn "$(realpath -m --relative-to="$(dirname "$l")" "$R/usr$t")" "$l"
done
rm -rf "$R"/usr/share/{doc,doc-base,man,info,lintian,locale,bug,aclocal} "$R"/usr/src "${R:?}"/etc
# Static archives are not linked (shared ones are), except those that CMake config files name
# (GTest/GMock ship static only).
find "$R" -name '*.a' -print0 | while IFS= read -r -d '' a; do
  grep -rqF --include='*.cmake' "/$(basename "$a")\"" "$R/usr" || rm -f "$a"
done
# ICU's test/tool libraries are never used.
rm -f "$R"/usr/lib/x86_64-linux-gnu/libicu{test,tu}.*
find "$R" -xtype l -delete   # dangling after the trims (libgloo.so: gloo is compiled into libtorch)

# Every shared library the prefix's ELF files need must be in the prefix or in the host's base system.
if command -v readelf >/dev/null; then
  base='^(ld-linux-x86-64\.so\.2|lib(c|m|dl|rt|pthread|util|resolv|stdc\+\+|gcc_s|z|ssl|crypto|systemd|atomic)\.so\.[0-9]+)$'
  unresolved=$(find "$R/usr/bin" "$R/usr/lib" -type f \( -name '*.so*' -o -perm -u+x \) -print0 |
    { xargs -0 readelf -d 2>/dev/null || true; } | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort -u |
    while read -r so; do
      [ -e "$R/usr/lib/x86_64-linux-gnu/$so" ] || [[ $so =~ $base ]] || echo "$so"
    done)
  # libcurl's own dependencies are left out on purpose (see LEAF).
  unresolved=$(grep -vE '^lib(nghttp2|idn2|rtmp|ssh2|psl|gssapi_krb5|ldap|lber|brotlidec|zstd)[-.]' <<<"$unresolved" || true)
  [ -z "$unresolved" ] || die "shared libraries needed but not bundled: $unresolved"
fi

echo "gpu_bundle: compressing sysroot ($(du -sh "$R" | cut -f1) unpacked)"
tar -C "$R" --owner=0 --group=0 --numeric-owner --sort=name -cf - usr |
  nice xz -T"${DITSERVE_XZ_THREADS:-0}" -9 > "$OUT/sysroot.tar.xz"

# --- wheels -------------------------------------------------------------------
echo "gpu_bundle: wheels"
PIP=(-m pip --disable-pip-version-check -q)
$PY "${PIP[@]}" download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$OUT/wheels" "${WHEELS[@]}"
$PY "${PIP[@]}" wheel --no-deps -w "$OUT/wheels" "${SDIST_WHEELS[@]}"
for w in "$OUT"/wheels/*.whl; do   # pure Python, or CPython 3.12 / abi3 on manylinux x86_64
  [[ $(basename "$w") =~ -(py2\.py3|py3|cp3[0-9]*)-(none|abi3|cp312)-(any|manylinux.*x86_64)\.whl$ ]] ||
    die "wheel not for CPython 3.12 x86_64: $w"
done
# Each wheel's requirements (for CPython 3.12 on Linux x86_64) must be bundled or on the host.
$PY - "$OUT/wheels" "${HOST_PY[@]}" <<'EOF' || die "wheels with unmet requirements (add them to WHEELS)"
import glob, re, sys, zipfile
from pip._vendor.packaging.requirements import Requirement
from pip._vendor.packaging.utils import canonicalize_name as canon
env = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux", "platform_system": "Linux",
       "platform_machine": "x86_64", "implementation_name": "cpython", "platform_python_implementation": "CPython",
       "os_name": "posix", "extra": ""}
wheels = glob.glob(sys.argv[1] + "/*.whl")
have = {canon(re.match(r"[^-]+", w.rsplit("/", 1)[1]).group(0)) for w in wheels} | {canon(n) for n in sys.argv[2:]}
bad = []
for w in wheels:
    with zipfile.ZipFile(w) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    for line in meta.splitlines():
        if line.startswith("Requires-Dist:"):
            r = Requirement(line.split(":", 1)[1].strip())
            if (r.marker is None or r.marker.evaluate(env)) and canon(r.name) not in have:
                bad.append(f"{w.rsplit('/', 1)[1]} needs {r}")
if bad:
    sys.exit("\n".join(bad))
EOF
{ echo; echo "[wheels: pip install --no-index --no-deps --target DIR]"; ls "$OUT/wheels"; } >> "$OUT/MANIFEST.txt"

# --- cuDNN frontend headers -------------------------------------------------------------
scripts/fetch_cudnn_frontend.sh "$OUT/cudnn_frontend"
{ echo; echo "[cuDNN frontend headers]"; echo "nvidia-cudnn-frontend $(cat "$OUT/cudnn_frontend/VERSION")"; } >> "$OUT/MANIFEST.txt"

# --- size -------------------------------------------------------------------------
bytes=$(du -sb "$OUT" | cut -f1)
mib=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')
echo "gpu_bundle: $OUT = ${mib} MiB (sysroot $(du -h "$OUT/sysroot.tar.xz" | cut -f1), wheels $(du -sh "$OUT/wheels" | cut -f1))"
[ "$bytes" -le $((LIMIT_MIB * 1048576)) ] || die "$OUT is ${mib} MiB, over the ${LIMIT_MIB} MiB budget"
echo "gpu_bundle: ok. On the GPU host (offline), from the repo root with $OUT/ beside it: scripts/gpu_host.sh all"
