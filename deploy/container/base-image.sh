#!/usr/bin/env bash
# Prints the base image to build on: python:3.11-slim when it can be pulled, otherwise a
# local Debian 12 image with Python 3.11 made with debootstrap (built once, then reused).
set -euo pipefail

LOCAL_IMAGE=${LOCAL_BASE_IMAGE:-localhost/bookworm-python:3.11}
UPSTREAM_IMAGE=${UPSTREAM_BASE_IMAGE:-docker.io/library/python:3.11-slim}

if podman image exists "$UPSTREAM_IMAGE" \
  || timeout 60 podman pull -q "$UPSTREAM_IMAGE" >/dev/null 2>&1; then
  echo "$UPSTREAM_IMAGE"
  exit 0
fi
if podman image exists "$LOCAL_IMAGE"; then
  echo "$LOCAL_IMAGE"
  exit 0
fi

echo "base-image: $UPSTREAM_IMAGE cannot be pulled; building $LOCAL_IMAGE with debootstrap" >&2
root=$(mktemp -d /var/tmp/bookworm-root.XXXXXX)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >&2
chroot "$root" apt-get update -qq >&2
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  python3 python3-venv ca-certificates >&2
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/*
# python:3.11-slim has `python` on PATH; keep that promise for the Dockerfile.
ln -sf /usr/bin/python3 "$root/usr/local/bin/python"
tar -C "$root" -c . | podman import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' - "$LOCAL_IMAGE" >&2
echo "$LOCAL_IMAGE"
