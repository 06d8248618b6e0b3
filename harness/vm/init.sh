#!/bin/busybox sh
# sockspec VM, stage 1: the initramfs's /init (busybox sh).
#
# Loads the modules that reach the host (virtio transport, 9p; listed in /modules/order),
# mounts the host's root read-only over virtio-9p (tag sockspec_root) and switch_roots
# into it, running stage 2 ($sockspec_guest, from the kernel command line) as PID 1 with
# the host's own /bin/sh.  switch_root, not chroot: the kernel's module autoloading
# runs its helper in PID 1's root.  On any failure: say why on the console, power off.
B=/bin/busybox
$B mount -t proc proc /proc
fail() {
    echo "sockspec-init: FAILED: $*"
    echo o > /proc/sysrq-trigger
    $B sleep 30
}
if [ "$sockspec_probe" = 1 ]; then      # the KVM probe: the kernel reached the initramfs
    echo "sockspec-init: probe ok"
    echo o > /proc/sysrq-trigger
    $B sleep 30
fi
while read -r m; do
    [ -n "$m" ] || continue
    $B insmod "$m" || fail "insmod $m"
done < /modules/order
$B mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 sockspec_root /newroot \
    || fail "cannot mount the host root (9p tag sockspec_root)"
[ -n "$sockspec_guest" ] && [ -f "/newroot$sockspec_guest" ] \
    || fail "no stage 2 script '$sockspec_guest' in the host root"
$B umount /proc
exec $B switch_root /newroot /bin/sh "$sockspec_guest"
