#!/bin/bash
# make kernel-test / kernel-smoke: the kernel tests on a second kernel, Debian 12's
# linux-image-amd64 (6.1, with netem, 8021q and nf_tables as modules), booted
# under qemu-system-x86_64 (software emulation: no /dev/kvm needed) from an
# initramfs built here: static test binaries (go test -c), the plugins the
# plugin tests exec, the modules the tests need, busybox as /init's shell and
# the host's own ip/ping/nsenter/... with their shared libraries.
#
#   test/kernel/run.sh [full|smoke|slow]
#
# full: every test of pkg/link, internal/kind and internal/plugin but the two
# slow ones; smoke: a subset for make check; slow: those two (crash, storm).
#
# The VM's /init (test/kernel/init.sh) prints one PASS/FAIL line per test
# binary on the serial console and powers off; this script fails when a
# binary failed, a verdict is missing or the VM did not finish within
# KERNEL_TEST_TIMEOUT seconds. The kernel and its modules are cached under
# .cache/kernel; the console log of the last run is kept there too. Needs
# root (apt-get) and the Go toolchain.
set -euo pipefail
MODE=${1:-full}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${KERNEL_CACHE:-$ROOT/.cache/kernel}
GO=${GO:-go}
case $MODE in
full) TIMEOUT=${KERNEL_TEST_TIMEOUT:-900} ;;
smoke) TIMEOUT=${KERNEL_TEST_TIMEOUT:-240} ;;
slow) TIMEOUT=${KERNEL_TEST_TIMEOUT:-3600} ;;
*) echo "usage: $0 [full|smoke|slow]" >&2; exit 2 ;;
esac
M=RATCHET-KERNEL-TEST
say() { echo "kernel-test: $*"; }
# clean drops the firmware's terminal resets and carriage returns from the console.
clean() { sed -u -E $'s/\x1b(c|\\[[0-9;?]*[A-Za-z])//g; s/\r$//'; }

WORK=$(mktemp -d /tmp/ratchet-kernel-test.XXXXXX)
QEMU_PID=
TAIL_PID=
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	# SIGTERM, then SIGKILL if the process is still there 5 s later (a busy
	# emulator has been seen to outlive its SIGTERM).
	for p in $QEMU_PID $TAIL_PID; do
		kill "$p" 2>/dev/null || continue
		for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$WORK"
	exit $rc
}
trap cleanup EXIT
trap 'say interrupted; exit 130' INT TERM

# --- host packages (only what is missing) -----------------------------------
need=()
for p in qemu-system-x86 busybox-static xz-utils cpio kmod; do
	dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
	say "apt-get install ${need[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --- the kernel and its modules (cached) --------------------------------------
# Wanted modules; modprobe in the VM loads their dependencies. Every qdisc,
# classifier and action comes along, so a kernel autoload never misses one.
# crc32c_generic is libcrc32c's (nf_tables') soft dependency, which busybox's
# modprobe does not follow.
WANT="veth vxlan macvlan 8021q sch_netem sch_tbf sch_ingress cls_u32 act_mirred crc32c_generic nf_tables"
PKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
if [ -z "$PKG" ]; then
	apt-get update -qq
	PKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
fi
KV=${PKG#linux-image-}
K=$CACHE/$KV
if [ ! -f "$K/ready" ] || [ "$(cat "$K/ready")" != "$WANT" ]; then
	say "preparing $PKG under $K"
	rm -rf "$K" && mkdir -p "$K"
	(cd "$WORK" && apt-get download -o APT::Sandbox::User=root "$PKG" >/dev/null)
	dpkg-deb -x "$WORK"/"$PKG"_*.deb "$WORK/ex"
	src=$WORK/ex/lib/modules/$KV
	# The package leaves modules.dep and modules.alias to depmod at install time.
	PATH=$PATH:/usr/sbin:/sbin depmod -b "$WORK/ex" "$KV"
	cp "$WORK/ex/boot/vmlinuz-$KV" "$K/vmlinuz"
	# The closure of WANT and net/sched over modules.dep.
	declare -A byname=() keep=()
	while IFS=: read -r mod _; do byname[$(basename "${mod%%.ko*}")]=$mod; done < "$src/modules.dep"
	queue=()
	for m in $WANT; do
		[ -n "${byname[$m]:-}" ] || { echo "kernel-test: $PKG has no module $m" >&2; exit 1; }
		queue+=("${byname[$m]}")
	done
	while IFS=: read -r mod _; do case $mod in kernel/net/sched/*) queue+=("$mod") ;; esac; done < "$src/modules.dep"
	while [ ${#queue[@]} -gt 0 ]; do
		mod=${queue[0]}; queue=("${queue[@]:1}")
		[ -z "${keep[$mod]:-}" ] || continue
		keep[$mod]=1
		deps=$(awk -F': *' -v m="$mod" '$1==m {print $2}' "$src/modules.dep")
		for d in $deps; do queue+=("$d"); done
	done
	dst=$K/lib/modules/$KV
	mkdir -p "$dst"
	for mod in "${!keep[@]}"; do
		out=$dst/${mod%.xz}
		mkdir -p "$(dirname "$out")"
		case $mod in *.xz) xz -dc "$src/$mod" > "$out" ;; *) cp "$src/$mod" "$out" ;; esac
	done
	# modules.dep and modules.alias for the kept modules only, uncompressed names.
	awk -F': *' 'NR==FNR {k[$0]=1; next} ($1 in k)' <(printf '%s\n' "${!keep[@]}") "$src/modules.dep" | sed 's/\.ko\.xz/.ko/g' > "$dst/modules.dep"
	grep -E "^alias .* ($(printf '%s\n' "${!keep[@]}" | sed 's#.*/##; s/\.ko.*//; s/-/_/g' | paste -sd'|'))\$" "$src/modules.alias" > "$dst/modules.alias" || true
	rm -rf "$WORK/ex" "$WORK"/*.deb
	echo "$WANT" > "$K/ready"
fi

# --- the initramfs -----------------------------------------------------------
R=$WORK/root
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,root,lib,lib64,bins,src}
mkdir -p "$R/var" && ln -s ../run "$R/var/run"
cp -a "$K/lib/modules" "$R/lib/"
cp /bin/busybox "$R/bin/busybox"
for a in sh mount modprobe insmod poweroff date cat sync mkdir; do ln -s busybox "$R/bin/$a"; done
ln -s ../bin/busybox "$R/sbin/modprobe"
# The commands the tests exec (grep exec.Command in the tests), the host's own
# builds with their libraries: the same tools as on the host run.
for t in ip tc nsenter unshare ping sysctl sleep touch; do
	p=$(command -v "$t") || { echo "kernel-test: the host has no $t" >&2; exit 1; }
	cp -L "$p" "$R/usr/bin/$t"
	for lib in $(ldd "$p" 2>/dev/null | grep -oE '/[^ ]+\.so[^ ]*'); do
		mkdir -p "$R$(dirname "$lib")" && cp -Ln "$lib" "$R$lib"
	done
done
cp "$ROOT/test/kernel/init.sh" "$R/init"
chmod +x "$R/init"
printf '%s\n' $WANT > "$R/etc/modules"

# Test binaries, statically linked, each run from a copy of its package dir.
say "building test binaries ($MODE)"
export CGO_ENABLED=0
build_test() { # name pkg run-regexp [skip-regexp]
	local name=$1 pkg=$2 run=$3 skip=${4:-}
	mkdir -p "$R/src/$pkg"
	(cd "$ROOT" && $GO test -c -o "$R/bins/$name.test" "./$pkg")
	[ ! -d "$ROOT/$pkg/testdata" ] || cp -a "$ROOT/$pkg/testdata" "$R/src/$pkg/"
	echo "$name /src/$pkg /bins/$name.test -test.v -test.timeout 30m${run:+ -test.run $run}${skip:+ -test.skip $skip}" >> "$R/etc/tests"
}
(cd "$ROOT" && $GO build -trimpath -o "$R/bins/" ./cmd/ratchet \
	github.com/containernetworking/plugins/plugins/main/ptp \
	github.com/containernetworking/plugins/plugins/ipam/host-local &&
	$GO build -trimpath -tags faultinject -o "$R/bins/ratchet-fault" ./cmd/ratchet)
if [ "$MODE" = slow ]; then
	build_test plugin internal/plugin '^(TestCrashSafety|TestStorm)$'
elif [ "$MODE" = smoke ]; then
	build_test link pkg/link '^(TestVethCarriesIPv4AndIPv6|TestVxlanBetweenTwoNodes|TestVlan|TestNetemImpairsTraffic|TestStitchJoinsTwoParkedEnds)$'
	build_test kind internal/kind '^TestVlanKind$'
	build_test plugin internal/plugin '^(TestDefaultMTU|TestPodLinkLineEveryOrder)$'
else
	build_test link pkg/link ''
	build_test kind internal/kind ''
	# Under emulation the crash test (72 SIGKILLs, each followed by a 64-link
	# ADD) and the 100-pod storm take about 10 minutes: they run apart, in
	# slow mode (make kernel-test-slow).
	build_test plugin internal/plugin '' '^(TestCrashSafety|TestStorm)$'
fi
echo "export RATCHET_TEST_PLUGIN_BIN=/bins" > "$R/etc/env"
(cd "$R" && find . | cpio -o -H newc --quiet) > "$WORK/initrd.cpio"
say "initramfs $(du -m "$WORK/initrd.cpio" | cut -f1) MB; booting $KV under qemu (timeout ${TIMEOUT}s)"

# --- boot and read the verdict ----------------------------------------------
LOG=$WORK/console.log
: > "$LOG"
start=$(date +%s)
qemu-system-x86_64 -machine q35 -cpu max -smp 2 -m 2048 -nographic -no-reboot -nodefaults -serial "file:$LOG" \
	-kernel "$K/vmlinuz" -initrd "$WORK/initrd.cpio" -append "console=ttyS0 quiet panic=-1" </dev/null >"$WORK/qemu.out" 2>&1 &
QEMU_PID=$!
tail -n +1 -f --pid="$QEMU_PID" "$LOG" | clean | grep --line-buffered -E "$M|^(--- |ok |FAIL|PASS|panic)" &
TAIL_PID=$!
while kill -0 "$QEMU_PID" 2>/dev/null; do
	if [ $(( $(date +%s) - start )) -ge "$TIMEOUT" ]; then
		say "FAIL: the VM did not finish within ${TIMEOUT}s"
		cp "$LOG" "$CACHE/last-console.log"
		exit 1
	fi
	sleep 1
done
wait "$QEMU_PID" || true
QEMU_PID=
wait "$TAIL_PID" 2>/dev/null || true
TAIL_PID=
clean < "$LOG" > "$CACHE/last-console.log"
elapsed=$(( $(date +%s) - start ))
want=$(grep -c . "$R/etc/tests")
pass=$(grep -c "$M PASS " "$CACHE/last-console.log" || true)
if grep -q "$M FAIL" "$CACHE/last-console.log" || ! grep -q "$M DONE fail=0" "$CACHE/last-console.log" || [ "$pass" -ne "$want" ]; then
	say "FAIL ($pass of $want test binaries passed, ${elapsed}s in the VM; console: $CACHE/last-console.log)"
	[ -s "$WORK/qemu.out" ] && cat "$WORK/qemu.out" >&2
	exit 1
fi
say "PASS: $pass test binaries on $KV in ${elapsed}s (console: $CACHE/last-console.log)"
