#!/bin/bash
# metrics-idle.sh: ratchetd's idle cost with metrics on (issue 15's budget:
# 1,000 links, idle, <= 1% of a core, <= 64 MiB RSS), measured by hand.
#
#   test/bench/metrics-idle.sh BINDIR [LINKS] [SECONDS] [PORT]
#
# BINDIR holds ratchet, ratchetd and ratchetctl (make build: bin/). As root:
# makes two pods (netns) joined by LINKS pod links (default 1000) with the
# plugin on a fresh local store, starts ratchetd on that store alone (no
# etcd) with --metrics-addr 127.0.0.1:PORT, scrapes /metrics every 15 s for
# SECONDS (default 300), then prints the CPU ratchetd used over that time
# (utime + stime from /proc/PID/stat), its RSS (VmRSS, VmHWM), one scrape's
# time and size. Everything it made (pods, parking netns, store) is removed
# at the end, also on failure.
#
# WEB_PORT=P also serves the topology page (--web-addr 127.0.0.1:P), the
# issue's "metrics and the page on"; VIEWER=1 keeps one page's event stream
# open (curl -N .../api/events) while it measures: the page's cost while
# somebody watches, which is not idle.
set -eu
bin=$1 links=${2:-1000} secs=${3:-300} port=${4:-19100}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
work=$(mktemp -d /tmp/ratchet-metrics-idle.XXXXXX)
store=$work/store
tag=mi$$
pid= viewer=
cleanup() {
	[ -n "$viewer" ] && kill "$viewer" 2>/dev/null && wait "$viewer" 2>/dev/null || true
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	for p in a b; do
		[ -e /run/netns/$tag-$p ] && cni DEL $p >/dev/null 2>&1 || true
		ip netns del $tag-$p 2>/dev/null || true
	done
	ip netns del "ratchet-park-$(printf %s "$store" | b2sum -l 256 | cut -c1-8)" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
annotation() { # side peer
	local i sep= out='['
	for ((i = 0; i < links; i++)); do
		out+="$sep{\"name\":\"$1$i\",\"peer\":{\"pod\":\"$2\",\"name\":\"$3$i\"}}"
		sep=,
	done
	printf '%s]' "$out"
}
cni() { # COMMAND POD
	local me=$2 peer=a mine=ea theirs=eb
	[ "$me" = a ] && peer=b mine=ea theirs=eb
	[ "$me" = b ] && mine=eb theirs=ea
	local ann
	ann=$(annotation $mine $peer $theirs | sed 's/"/\\"/g')
	printf '{"cniVersion":"1.0.0","name":"lab","type":"ratchet","store":{"dir":"%s"},"maxLinksPerPod":%d,
	  "capabilities":{"io.kubernetes.cri.pod-annotations":true},
	  "runtimeConfig":{"io.kubernetes.cri.pod-annotations":{"ratchet.cni.dev/links":"%s"}}}' "$store" "$links" "$ann" |
		CNI_COMMAND=$1 CNI_CONTAINERID=sb-$tag-$me CNI_NETNS=/run/netns/$tag-$me CNI_IFNAME=eth0 CNI_PATH=$bin \
			CNI_ARGS="K8S_POD_NAMESPACE=lab;K8S_POD_NAME=$me" "$bin/ratchet"
}
for p in a b; do
	ip netns add $tag-$p
	cni ADD $p >/dev/null
done
web=()
[ -n "${WEB_PORT:-}" ] && web=(--web-addr "127.0.0.1:$WEB_PORT")
"$bin/ratchetd" --store-dir "$store" --node idle --health-addr "" --metrics-addr 127.0.0.1:$port "${web[@]}" 2>"$work/ratchetd.log" &
pid=$!
sleep 2
if [ -n "${VIEWER:-}" ] && [ -n "${WEB_PORT:-}" ]; then
	curl -sN -o /dev/null "127.0.0.1:$WEB_PORT/api/events" &
	viewer=$!
fi
ticks=$(getconf CLK_TCK)
cpu() { awk '{ print $14 + $15 }' /proc/$pid/stat; }
start=$(cpu) t0=$(date +%s.%N)
scrape=$( { /usr/bin/time -f %e curl -sf -o "$work/m.txt" 127.0.0.1:$port/metrics; } 2>&1 )
series=$(grep -c '^ratchet_link_' "$work/m.txt")
for ((s = 15; s < secs; s += 15)); do
	sleep 15
	curl -sf --compressed -o /dev/null 127.0.0.1:$port/metrics
done
sleep $((secs % 15))
end=$(cpu) t1=$(date +%s.%N)
awk -v c=$((end - start)) -v hz="$ticks" -v t0="$t0" -v t1="$t1" \
	'BEGIN { printf "cpu: %.2f s over %.0f s = %.3f%% of a core\n", c / hz, t1 - t0, 100 * c / hz / (t1 - t0) }'
grep -E '^(VmRSS|VmHWM)' /proc/$pid/status
echo "one scrape: $scrape s wall, $(wc -c <"$work/m.txt") bytes, $series ratchet_link_ series, $(grep -c "^ratchet_link_state{.*state=\"up\"" "$work/m.txt") ends up"
