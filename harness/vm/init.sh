#!/bin/busybox sh
# sockspec VM, stage 1: the initramfs's /init (busybox sh).
#
# Loads the modules that reach the host (virtio transport, 9p, overlay; listed in
# /modules/order), mounts the host's root read-only over virtio-9p (tag sockspec_root),
# lays a tmpfs over it (overlayfs: the guest may write anywhere, nothing reaches the host,
# and no host folder is hidden by a mount) and switch_roots into that, running stage 2
# ($sockspec_guest, from the kernel command line) as PID 1 with the host's own /bin/sh.  switch_root, not chroot: the kernel's module autoloading
# runs its helper in PID 1's root.  On any failure: say why on the console, power off.
#
# With an image as the root (VMEnvironment(image=...)), sockspec_root is that image's
# exported file system instead, and $sockspec_mounts (tag:path,tag:path,...) lists further
# read-only 9p shares -- the checkout, the man pages, the .venv's packages, the kernel's
# modules, the policy -- mounted at their host paths in the new root before switching.
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
$B mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 sockspec_root /lower \
    || fail "cannot mount the host root (9p tag sockspec_root)"
$B mount -t tmpfs -o mode=755 tmpfs /upper && $B mkdir /upper/data /upper/work
$B mount -t overlay -o lowerdir=/lower,upperdir=/upper/data,workdir=/upper/work overlay /newroot \
    || fail "cannot mount the overlay of the host root"
for m in $(echo "$sockspec_mounts" | $B tr , ' '); do
    $B mkdir -p "/newroot${m#*:}" \
        && $B mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 "${m%%:*}" "/newroot${m#*:}" \
        || fail "cannot mount the share ${m%%:*} on ${m#*:}"
done
[ -n "$sockspec_guest" ] && [ -f "/newroot$sockspec_guest" ] \
    || fail "no stage 2 script '$sockspec_guest' in the new root"
$B umount /proc
exec $B switch_root /newroot /bin/sh "$sockspec_guest"
