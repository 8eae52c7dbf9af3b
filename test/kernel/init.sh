#!/bin/sh
# /init of the second kernel's VM (busybox sh, PID 1). It loads the modules
# listed in /etc/modules, runs each line of /etc/tests ("name dir binary
# args...") from its package directory, prints one verdict line per binary
# on the serial console and powers off. The host script (run.sh) reads the
# verdict; the marker keeps kernel messages from being taken for one.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TMPDIR=/tmp
M=RATCHET-KERNEL-TEST
# Variables the test binaries need (RATCHET_TEST_PLUGIN_BIN).
. /etc/env
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
mkdir -p /run/netns /root
# Unknown link kinds, qdiscs and actions are requested by alias from here.
echo /sbin/modprobe > /proc/sys/kernel/modprobe
ip link set lo up
echo "$M kernel $(cat /proc/sys/kernel/osrelease)"
while read -r mod; do
	modprobe "$mod" || echo "$M FAIL modprobe $mod"
done < /etc/modules
fail=0
while read -r name dir bin args; do
	[ -n "$name" ] || continue
	start=$(date +%s)
	echo "$M RUN $name"
	# A test binary behaves as under go test: its package dir is its cwd.
	if (cd "$dir" && "$bin" $args); then
		echo "$M PASS $name ($(( $(date +%s) - start ))s)"
	else
		echo "$M FAIL $name ($(( $(date +%s) - start ))s)"
		fail=1
	fi
done < /etc/tests
echo "$M DONE fail=$fail"
sync
poweroff -f
