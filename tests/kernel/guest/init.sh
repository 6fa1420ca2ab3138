#!/bin/sh
# /init of the cifs.ko test guest (PID 1 in the busybox initramfs built by tests/kernel/image.py).
# Loads the modules, configures slirp's fixed addressing, runs /test.sh, prints dmesg between markers and
# powers off. The host runner (tests/kernel/vm.py) parses the markers; keep their spelling in sync with it.
export PATH=/bin
export HOME=/root
umask 022

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o size=300m tmpfs /tmp
mount -t tmpfs tmpfs /run

echo "SMBTEST-BOOTED $(cut -d' ' -f1 /proc/uptime)"

while read -r module; do
    insmod "$module" || echo "SMBTEST-WARN insmod $module failed"
done < /modules.load

# slirp's defaults: guest 10.0.2.15/24, host alias 10.0.2.2 (the relay), no DNS needed.
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2

# Settings written by the runner (server address, port, credentials, test options).
. /run-env.sh

echo "SMBTEST-BEGIN $(cut -d' ' -f1 /proc/uptime)"
sh /test.sh
rc=$?
echo "SMBTEST-END $(cut -d' ' -f1 /proc/uptime)"

echo "SMBTEST-DMESG-BEGIN"
dmesg
echo "SMBTEST-DMESG-END"
echo "SMBTEST-EXIT $rc"
sync
poweroff -f
