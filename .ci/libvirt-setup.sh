#!/usr/bin/env bash
# Installs what the libvirt driver tests need to run several libvirtd "hosts" on one machine.
# Idempotent. Deliberately never installs libvirt-daemon-system (it would start a system daemon and
# its "default" network on 192.168.122.0/24) and never defines or starts any libvirt network.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
  echo "libvirt-setup: must run as root (apt-get, useradd)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
pkgs=(libvirt-daemon libvirt-daemon-driver-qemu qemu-system-x86 libvirt-clients tini)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi

# The QEMU driver refuses to load unless these exist, even when qemu.conf runs QEMU as root.
getent group kvm >/dev/null || groupadd --system kvm
getent group libvirt-qemu >/dev/null || groupadd --system libvirt-qemu
if ! getent passwd libvirt-qemu >/dev/null; then
  useradd --system --no-create-home --home-dir /var/lib/libvirt \
    --shell /usr/sbin/nologin -g libvirt-qemu -G kvm libvirt-qemu
fi

# Fail here, not in the middle of a test run, if something is still missing.
for b in libvirtd qemu-system-x86_64 tini unshare virsh; do
  command -v "$b" >/dev/null || { echo "libvirt-setup: $b not found after install" >&2; exit 1; }
done
echo "libvirt-setup: $(libvirtd --version | head -1), $(qemu-system-x86_64 --version | head -1)"
