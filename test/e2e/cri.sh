#!/usr/bin/env bash
# cri.sh -- ratchet on the kubelet path: containerd's CRI plugin, driven by
# crictl exactly as kubelet drives it (RunPodSandbox, CreateContainer, ...).
#
# containerd (and so every CNI plugin it runs) and crictl live in a throwaway
# host netns. The cluster network is ptp + host-local, with ratchet chained
# after it: CRI needs eth0 with an IP in the result, which ptp provides and
# ratchet must pass through.
#
# Here the link is a static one in the network config (pod-to-pod links
# from annotations are cri-podlinks.sh's), so the config changes between pods:
#   pod B: ptp + ratchet with no links
#   pod A: ptp + ratchet with in1 (A) <-> in2 (B, B's sandbox netns path)
# containerd reloads the config when the file changes; we wait until
# `crictl info` shows the new one before starting A.
. "$(dirname "$0")/lib.sh"
e2e_init cri

need_pkgs containerd runc busybox-static iproute2 iputils-ping jq util-linux
build_go_tools
build_crictl
make_cni_bin ptp host-local loopback # CRI always runs loopback for lo
host_netns
containerd_start
busybox_image
pause_image
import_image "$PAUSE_TAR" k8s.io # CRI's images live in containerd namespace k8s.io
import_image "$BUSYBOX_TAR" k8s.io

crictl_setup # crictl talks to our private containerd, from the host netns

# set_network LINKS_JSON: (re)write CRI's network config: ptp, then ratchet
# with the given static links and the pod-annotations capability (what a
# real deployment declares), then wait until containerd has loaded it.
set_network() {
  local rc i
  rc=$(ratchet_conf "$1" | jq '. + {capabilities: {"io.kubernetes.cri.pod-annotations": true}}')
  conflist ratchet-e2e "$(ptp_conf)" "$rc" | write_atomically "$W/cni-conf/10-ratchet-e2e.conflist"
  for i in $(seq 1 100); do
    crictl info | jq -e --argjson links "$1" '
        ([.status.conditions[] | select(.type == "NetworkReady") | .status] == [true]) and
        ([.cniconfig.Networks[].Config | select(.Name == "ratchet-e2e") | .Source | fromjson | .plugins[1].links] == [$links])' \
      >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  fail "containerd did not load the new network config within 10 s"
}

# pod_json NAME: a pod sandbox config, as kubelet would send it.
pod_json() {
  jq -n --arg name "$1" --arg logs "$W/podlogs/$1" '{
    metadata: {name: $name, namespace: "ratchet-e2e", uid: ("uid-" + $name), attempt: 0},
    hostname: $name, log_directory: $logs, linux: {}}' >"$W/$1.json"
}
# run_pod NAME: RunPodSandbox + a busybox container in it; sets POD[NAME],
# CTR[NAME] and NETNS[NAME] (the sandbox netns path).
declare -A POD CTR NETNS
run_pod() {
  local t
  pod_json "$1"
  jq -n '{metadata: {name: "box"}, image: {image: "localhost/busybox:local"},
          command: ["/bin/sleep", "600"], log_path: "box.log", linux: {}}' >"$W/$1-box.json"
  t=$(ts)
  POD[$1]=$(crictl_or_fail runp "$W/$1.json")
  elapsed "crictl runp $1" "$t"
  CTR[$1]=$(crictl_or_fail create "${POD[$1]}" "$W/$1-box.json" "$W/$1.json")
  crictl_or_fail start "${CTR[$1]}" >/dev/null
  NETNS[$1]=$(sandbox_netns "${POD[$1]}")
  [ -e "${NETNS[$1]}" ] || fail "pod $1: no sandbox netns (got '${NETNS[$1]}')"
}
in_pod() { crictl exec "${CTR[$1]}" "${@:2}"; }

# --- pod B: ptp + ratchet, no links
set_network '[]'
run_pod pod-b
B=${NETNS[pod-b]}
ip_b=$(crictl inspectp "${POD[pod-b]}" | jq -r .status.network.ip)
[[ $ip_b == 203.0.113.* ]] || fail "pod B's IP should come from ptp/host-local, got '$ip_b'"
expect_no_ratchet "$B" "pod B"
ok "pod B runs, chained ratchet with no links: CRI got ptp's eth0 IP $ip_b through ratchet"

# --- pod A: ptp + ratchet with a link to B's sandbox netns
set_network "$(link_to "$B")"
run_pod pod-a
A=${NETNS[pod-a]}
ip_a=$(crictl inspectp "${POD[pod-a]}" | jq -r .status.network.ip)
[[ $ip_a == 203.0.113.* ]] || fail "pod A's IP should come from ptp/host-local, got '$ip_a'"
ok "pod A runs with a ratchet link: CRI still reports ptp's eth0 IP $ip_a (prevResult passed through)"

expect_link "$A" in1 "$A_IP4/24" "$A_IP6/64"
expect_link "$B" in2 "$B_IP4/24" "$B_IP6/64"
in_pod pod-a ip -o addr show dev in1 | grep -qF "$A_IP4/24" || fail "the container in pod A does not see in1 with $A_IP4"
ok "in1 is in pod A and in2 in pod B: up, addressed, marked 'alias ratchet:'"

traffic_flows "in_pod pod-a" "in_pod pod-b" pod
ok "traffic flows between the pods over the ratchet veth (busybox ping via crictl exec, IPv4 both ways, IPv6)"

# --- StopPodSandbox: DEL with the netns path and prevResult. We hold A's
# netns open first, so that what we find there afterwards is what DEL left.
hold_netns "$A" pod-a
t=$(ts)
crictl_or_fail stopp "${POD[pod-a]}" >/dev/null
elapsed "crictl stopp pod-a" "$t"
A_HELD=$W/held-pod-a
expect_no_link "$A_HELD" in1
expect_no_link "$B" in2
expect_no_ratchet "$A_HELD" "pod A"
expect_no_ratchet "$B" "pod B"
expect_no_ratchet "$HOST_NETNS" "the host netns"
ok "after stopp (DEL): in1 gone from pod A (netns held alive), in2 gone from pod B; no 'alias ratchet:' in A, B or host"

# --- RemovePodSandbox: a second DEL, with CNI_NETNS="" and no prevResult.
crictl_or_fail rmp "${POD[pod-a]}" >/dev/null
n=$(grep -c "msg=\"DEL done\".*container=${POD[pod-a]}" "$W/logs/ratchet.log" || true)
[ "$n" -ge 2 ] || fail "expected 2 DELs for pod A (stopp + rmp), ratchet logged $n"
ok "rmp: the second DEL (empty CNI_NETNS, no prevResult) succeeds"

crictl_or_fail stopp "${POD[pod-b]}" >/dev/null
crictl_or_fail rmp "${POD[pod-b]}" >/dev/null
[ -z "$(crictl pods -q)" ] || fail "pods left: $(crictl pods -q | tr '\n' ' ')"
if [ -e "$A" ] || [ -e "$B" ]; then fail "containerd left a sandbox netns handle"; fi
ok "pod B stopped and removed; no pod and no sandbox netns handle left"
expect_real_host_untouched
