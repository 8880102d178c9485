#!/usr/bin/env bash
# Builds the acli test guest from Debian packages only (nothing is installed):
#   OUTDIR/disk.raw    a bootable disk image: FAT with syslinux, Debian's kernel
#                      and a busybox initramfs running ./init
#   OUTDIR/disk.qcow2  the same image as qcow2 (what users usually import)
# Needs: apt-get (download only), dpkg-deb, mkfs.vfat, mtools, syslinux, qemu-img.
# DEBS, when set, is a directory of already downloaded .debs to reuse.
set -euo pipefail
out=${1:?usage: build.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
debs=${DEBS:-$work/debs}
mkdir -p "$debs" "$out"

kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
kver=${kpkg#linux-image-}
for p in "$kpkg" busybox-static; do
  ls "$debs/${p}_"*.deb >/dev/null 2>&1 || (cd "$debs" && apt-get download -q "$p" 2>/dev/null)
done

root=$work/root
mkdir -p "$root"/{bin,dev,proc,sys,tmp,lib/modules} "$work/k"
dpkg-deb --fsys-tarfile "$debs/busybox-static_"*.deb | tar -x -C "$work" ./bin/busybox
cp "$work/bin/busybox" "$root/bin/busybox"
dpkg-deb --fsys-tarfile "$debs/${kpkg}_"*.deb | tar -x -C "$work/k" \
  "./boot/vmlinuz-$kver" "./lib/modules/$kver/kernel/drivers" \
  "./lib/modules/$kver/kernel/block" "./lib/modules/$kver/kernel/lib" "./lib/modules/$kver/kernel/crypto" \
  "./lib/modules/$kver/kernel/arch"
mods=$work/k/lib/modules/$kver

# The disk drivers for every bus acli offers (pci=virtio-blk, scsi=virtio-scsi,
# ide and sata), each after the modules its modinfo says it depends on.
find "$mods/kernel" -name '*.ko' | awk -F/ '{n = $NF; sub(/\.ko$/, "", n); gsub(/-/, "_", n); print n, $0}' >"$work/index"
: >"$root/modules.order"
add() {
  local name=${1//-/_} path d
  grep -qx "$name" "$work/added" 2>/dev/null && return 0
  echo "$name" >>"$work/added"
  path=$(awk -v n="$name" '$1 == n {print $2; exit}' "$work/index")
  [ -n "$path" ] || { echo "build.sh: module $name not in $kpkg" >&2; exit 1; }
  for d in $(tr '\0' '\n' <"$path" | sed -n 's/^depends=//p' | tr ',' ' '); do add "$d"; done
  cp "$path" "$root/lib/modules/$name.ko"
  echo "$name.ko" >>"$root/modules.order"
}
for m in virtio_pci virtio_blk virtio_scsi sd_mod ata_piix ahci; do add "$m"; done

install -m 0755 "$here/init" "$root/init"
(cd "$root" && find . | "$root/bin/busybox" cpio -o -H newc 2>/dev/null | gzip -9) >"$work/initrd.gz"

cat >"$work/syslinux.cfg" <<CFG
DEFAULT guest
TIMEOUT 0
LABEL guest
  KERNEL vmlinuz
  INITRD initrd.gz
  APPEND console=ttyS0 quiet panic=-1
CFG
img=$work/disk.raw
mkfs.vfat -C -n ACLIBOOT "$img" 24576 >/dev/null
syslinux --install "$img"
MTOOLS_SKIP_CHECK=1 mcopy -i "$img" "$work/k/boot/vmlinuz-$kver" ::vmlinuz
MTOOLS_SKIP_CHECK=1 mcopy -i "$img" "$work/initrd.gz" "$work/syslinux.cfg" ::
qemu-img convert -f raw -O qcow2 "$img" "$work/disk.qcow2"
mv "$img" "$work/disk.qcow2" "$out/"
