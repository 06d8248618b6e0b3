#!/bin/sh
# sockspec VM, stage 2: PID 1, in the host's root (read-only over 9p), run by its /bin/sh
# -- or in a container image's root with the project's paths mounted in (init.sh), run by
# the image's /bin/sh.
#
# Mounts the kernel's file systems and the read-write share (tag sockspec_out) on
# /run/sockspec (the root is the host's under a tmpfs overlay, see init.sh), reads the job the host wrote there (job.env: the policy, the context to
# run in, the command), loads the SELinux policy and enforces it, runs the job in that
# context, writes its exit status to /run/sockspec/status and powers off.
# Lines starting "sockspec-guest:" mark progress for the host (boot-to-first-test timing).
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
say() { echo "sockspec-guest: $*"; }
fail() {
    say "FAILED: $*"
    [ -d /run/sockspec ] && echo "failed: $*" > /run/sockspec/status
    sync
    echo o > /proc/sysrq-trigger
    sleep 30 2>/dev/null
}
say "stage 2 started"
mount -t proc proc /proc || fail "mount /proc"
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm 2>/dev/null
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t securityfs securityfs /sys/kernel/security
grep -qw selinuxfs /proc/filesystems && mount -t selinuxfs selinuxfs /sys/fs/selinux
mkdir -p /run/sockspec
mount -t 9p -o trans=virtio,version=9p2000.L,rw,msize=262144 sockspec_out /run/sockspec \
    || fail "cannot mount the results share (9p tag sockspec_out)"
[ -f /run/sockspec/job.env ] || fail "no job.env in the results share"
. /run/sockspec/job.env

# The guest kernel's modules and config where modprobe (module autoloading: sctp, esp4)
# and harness.kernel look for them (the root is an overlay: these links stay in the guest).
release=$(uname -r)
if [ -n "$SOCKSPEC_KERNEL_MODULES" ]; then
    mkdir -p /lib/modules && ln -sfn "$SOCKSPEC_KERNEL_MODULES" "/lib/modules/$release"
fi
if [ -n "$SOCKSPEC_KERNEL_CONFIG" ]; then
    mkdir -p /boot && ln -sf "$SOCKSPEC_KERNEL_CONFIG" "/boot/config-$release"
fi
ip link set lo up || fail "ip link set lo up (is iproute2 in this root?)"
echo sockspec-vm > /proc/sys/kernel/hostname
# An exported image's /etc/hosts is Docker's empty placeholder: give localhost a name.
[ -s /etc/hosts ] || printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > /etc/hosts

if [ -n "$SOCKSPEC_POLICY" ]; then
    [ -e /sys/fs/selinux/load ] || fail "no selinuxfs: SELinux is not active in this kernel"
    cat "$SOCKSPEC_POLICY" > /sys/fs/selinux/load || fail "loading the policy $SOCKSPEC_POLICY"
    say "policy loaded: $(cat /proc/self/attr/current)"
    if [ "$SOCKSPEC_ENFORCE" = 1 ]; then
        echo 1 > /sys/fs/selinux/enforce || fail "cannot enforce"
        [ "$(cat /sys/fs/selinux/enforce)" = 1 ] || fail "enforce did not stick"
    fi
fi
if [ -n "$SOCKSPEC_CONTEXT" ]; then
    printf %s "$SOCKSPEC_CONTEXT" > /proc/self/attr/current || fail "cannot switch to $SOCKSPEC_CONTEXT"
    say "running as $(cat /proc/self/attr/current)"
fi

cd "$SOCKSPEC_ROOT" || fail "no project at $SOCKSPEC_ROOT"
say "job started"
"$@"
rc=$?
say "job finished with exit status $rc"
echo "$rc" > /run/sockspec/status
sync
umount /run/sockspec
echo o > /proc/sysrq-trigger
# PID 1 must not exit before the power-off lands (the kernel would panic): wait in the
# shell itself -- an external sleep may not be executable in the test's SELinux domain.
while :; do :; done
