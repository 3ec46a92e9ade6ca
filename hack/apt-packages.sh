#!/bin/sh
# Installs the Debian packages the dev cluster's real node needs (containerd, runc, CNI plugins,
# busybox-static for the local images, iproute2 for the pod bridge, debootstrap for the controller
# image built without Docker). Idempotent: when everything
# is installed it only runs dpkg-query and exits, without touching the network.
set -eu

PACKAGES="containerd runc containernetworking-plugins busybox-static iproute2 util-linux debootstrap"

missing=""
for pkg in $PACKAGES; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $pkg"
  fi
done

if [ -z "$missing" ]; then
  echo "apt-packages: all installed ($PACKAGES)"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "apt-packages: missing:$missing; run as root (sudo $0)" >&2
  exit 1
fi

echo "apt-packages: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
# Package lists may be absent on a fresh image; update once only when a package is unknown.
# shellcheck disable=SC2086
if ! apt-get install -y --no-install-recommends $missing; then
  apt-get update
  apt-get install -y --no-install-recommends $missing
fi
# Debian enables containerd.service; the dev cluster runs its own instance per cluster home and
# never uses the system one. Nothing to stop where systemd is not PID 1.
