#!/usr/bin/env bash
# Installs podman, buildah, podman-compose and runc from apt when missing, and configures
# podman for a machine without systemd whose cgroups are hybrid (runc, cgroupfs, file
# events). Idempotent; leaves an existing /etc/containers/containers.conf alone.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for tool in podman buildah podman-compose runc; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
command -v debootstrap >/dev/null || missing+=(debootstrap)
# Debian 12's podman uses CNI: compose service names resolve only with the dnsname plugin.
[ -x /usr/lib/cni/dnsname ] || missing+=(golang-github-containernetworking-plugin-dnsname)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup-podman: installing ${missing[*]} from apt"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" uidmap slirp4netns >/dev/null
fi

conf=/etc/containers/containers.conf
if [ ! -s "$conf" ]; then
  echo "setup-podman: writing $conf (runc, cgroupfs, file events logger)"
  $SUDO mkdir -p /etc/containers
  $SUDO tee "$conf" >/dev/null <<'CONF'
# Written by deploy/container/setup-podman.sh: crun fails on hybrid cgroups and there is
# no systemd, so use runc with cgroupfs and log events to a file.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
elif ! grep -q cgroupfs "$conf"; then
  echo "setup-podman: $conf exists without cgroup_manager=\"cgroupfs\"; podman may fail" >&2
fi
