#!/usr/bin/env bash
# Makes a local Debian bookworm base image for hosts that reach a Debian mirror but no container
# registry: debootstrap (minbase) into a temp dir, then `docker import`. The Dockerfile takes it as
#   --build-arg CPU_BASE=ditserve-base:bookworm --build-arg BUILDER_BASE=ditserve-base:bookworm
# Usage (root): docker/make_base_image.sh [image-name]   (default ditserve-base:bookworm)
# Skips the work when the image already exists (DITSERVE_REBUILD_BASE=1 forces it).
set -euo pipefail
NAME=${1:-ditserve-base:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
if [ -z "${DITSERVE_REBUILD_BASE:-}" ] && docker image inspect "$NAME" > /dev/null 2>&1; then
  echo "make_base_image: $NAME exists"; exit 0
fi
command -v debootstrap > /dev/null || { echo "make_base_image: needs debootstrap (apt-get install debootstrap)" >&2; exit 1; }
root=$(mktemp -d /var/tmp/ditserve-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase bookworm "$root" "$MIRROR"
# Same mirror for apt inside the image, plus security updates; no apt caches or docs in the layer.
cat > "$root/etc/apt/sources.list" <<SRC
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb ${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security} bookworm-security main
SRC
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/*
tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/bash"]' - "$NAME"
docker image ls "$NAME"
