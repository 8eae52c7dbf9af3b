#!/usr/bin/env bash
# cri-multinode.sh -- pod links across nodes on the kubelet path: two
# containerd instances (CRI, driven by crictl), one per simulated node.
#
# The nodes are multinode.sh's: two netns on an underlay (node1 192.0.2.1,
# node2 192.0.2.2, a bridge in a "lan" netns at 192.0.2.254 where Debian's
# etcd listens). Each node runs its own ratchetd and its own containerd
# (nsenter --net into the node's netns; own root, state, socket and CNI
# config dir under $W/nodeN), so each node's netns is what the throwaway
# "host" netns is to cri-podlinks.sh. Each node's network config is the
# cluster network (ptp + host-local, node1 203.0.113.0/25, node2
# 203.0.113.128/25) with ratchet chained after it: store type etcd, that
# node's name, local store dir and agent socket, and the pod-annotations
# capability. ratchetd reads the same conflist (--config).
#
# Pods declare their links in the annotation ratchet.cni.dev/links:
#
#   a (node1) e1 198.51.100.1/24 <-> 198.51.100.2/24 w1 b (node2)
#
# a first, then b on the other node; traffic crosses the VXLAN tunnel the
# agents make. Then b is moved the Kubernetes way (stopp + rmp, runp on the
# other node, node1, where the link becomes a local one) and back to node2:
# each time the link comes back, and a's e1 never changes (same ifindex).
# At the end nothing of ratchet's is left, and we remove the nodes' parking
# netns (ratchet makes them and never deletes them).
. "$(dirname "$0")/lib.sh"
e2e_init cri-multinode

need_pkgs containerd runc iproute2 iputils-ping jq util-linux etcd-server etcd-client
[ -x "$BIN/ratchetd" ] || fail "no ratchetd binary in BIN=$BIN (run: make build)"
build_go_tools
build_crictl
make_cni_bin ptp host-local loopback # CRI always runs loopback for lo
pause_image

# Registered before the agents and the containerds start: the parking
# netns go after every pod.
parking_of_nodes 2

underlay_setup 2
etcd_start
on_exit etcd_stop

# crictl_on I ARGS...: crictl against node I's containerd, from node I's
# netns (where containerd's streaming server listens).
crictl_on() {
  nsenter --net="${NODE_NETNS[$1]}" env CRI_CONFIG_FILE="$W/node$1/crictl.yaml" "$CRICTL" "${@:2}" 2>>"$W/logs/crictl-node$1.log"
}
crictl_on_or_fail() { crictl_on "$@" || fail "node$1: crictl $2: $(tail -1 "$W/logs/crictl-node$1.log")"; }

SUBNET=([1]=203.0.113.0/25 [2]=203.0.113.128/25)
for n in 1 2; do
  # The cluster network of node n: ptp + host-local on its pod range, then
  # ratchet for that node. ratchetd reads the same file.
  conf_dir=$W/node$n/cni-conf
  mkdir -p "$conf_dir"
  ptp=$(jq -n --arg subnet "${SUBNET[n]}" --arg dir "$W/node$n/ipam" \
    '{type: "ptp", ipMasq: false, ipam: {type: "host-local", dataDir: $dir, ranges: [[{subnet: $subnet}]]}}')
  conflist ratchet-e2e "$ptp" "$(node_conf "$n")" | write_atomically "$conf_dir/10-ratchet-e2e.conflist"
  ratchetd_start "$n" "$conf_dir/10-ratchet-e2e.conflist"
  on_exit "ratchetd_stop $n"

  # shellcheck disable=SC2034 # read by containerd_start
  HOST_NETNS=${NODE_NETNS[n]} # containerd runs in the node's netns
  containerd_start "$W/node$n/containerd" "$conf_dir"
  import_image "$PAUSE_TAR" k8s.io
  printf 'runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 30\n' "$SOCK" "$SOCK" >"$W/node$n/crictl.yaml"
  on_exit "crictl_on $n rmp -f -a" # before containerd stops
done

loaded() {
  crictl_on "$1" info | jq -e --arg node "node$1" '
      ([.status.conditions[] | select(.type == "NetworkReady") | .status] == [true]) and
      ([.cniconfig.Networks[].Config | select(.Name == "ratchet-e2e") | .Source | fromjson |
        .plugins[1] | .store.type == "etcd" and .node.name == $node] == [true])'
}
for n in 1 2; do
  retry 20 loaded "$n" || fail "node$n's containerd did not load its network config within 10 s"
done
ok "two nodes, each with its own ratchetd and containerd (in the node's netns); each containerd loaded its node's conflist (ptp, then ratchet with store etcd and its node name)"

# --- pods
declare -A LINKS POD NODE NETNS
LINKS[a]='[{"name":"e1","ips":["198.51.100.1/24"],"peer":{"pod":"b","name":"w1"}}]'
LINKS[b]='[{"name":"w1","ips":["198.51.100.2/24"],"peer":{"pod":"a","name":"e1"}}]'

# runp NAME NODE UID: RunPodSandbox for pod NAME of namespace lab on node
# NODE, with its links annotation; sets POD, NODE and NETNS[NAME].
runp() {
  local t
  jq -n --arg name "$1" --arg uid "$3" --arg logs "$W/podlogs/$1-$3" --arg links "${LINKS[$1]}" '{
    metadata: {name: $name, namespace: "lab", uid: $uid, attempt: 0},
    hostname: $name, log_directory: $logs,
    annotations: {"ratchet.cni.dev/links": ($links | fromjson | tojson)}, linux: {}}' >"$W/$1-$3.json"
  t=$(ts)
  POD[$1]=$(crictl_on_or_fail "$2" runp "$W/$1-$3.json")
  elapsed "crictl runp $1 on node$2" "$t"
  NODE[$1]=$2
  NETNS[$1]=$(crictl_on "$2" inspectp "${POD[$1]}" | jq -r '.info.runtimeSpec.linux.namespaces[] | select(.type == "network") | .path')
  [ -e "${NETNS[$1]}" ] || fail "pod $1: no sandbox netns (got '${NETNS[$1]}')"
}
# rm_pod NAME: StopPodSandbox (DEL) + RemovePodSandbox (a second DEL) on its node.
rm_pod() {
  local t
  t=$(ts)
  crictl_on_or_fail "${NODE[$1]}" stopp "${POD[$1]}" >/dev/null
  crictl_on_or_fail "${NODE[$1]}" rmp "${POD[$1]}" >/dev/null
  elapsed "crictl stopp + rmp $1 on node${NODE[$1]}" "$t"
}

flags() { nsenter --net="$1" ip -o link show dev "$2" | grep -o '<[^>]*>'; }
ifindex() { nsenter --net="$1" ip -o link show dev "$2" | cut -d: -f1; }
mtu() { nsenter --net="$1" ip -o link show dev "$2" | grep -o 'mtu [0-9]*' | cut -d' ' -f2; }
no_carrier() { flags "$1" "$2" | grep -q NO-CARRIER && ! flags "$1" "$2" | grep -q LOWER_UP; }
# pings POD ADDR: ping from inside the pod's sandbox netns, polling: the
# agents complete a cross-node link asynchronously.
pings() { retry 20 nsenter --net="${NETNS[$1]}" ping -n -c 1 -W 1 "$2"; }
link_up() {
  pings a 198.51.100.2 || fail "${1}a (node${NODE[a]}) cannot ping b (node${NODE[b]}) over the link"
  pings b 198.51.100.1 || fail "${1}b (node${NODE[b]}) cannot ping a (node${NODE[a]}) over the link"
}
park_links() { nsenter --net="$(parking_of "$1")" ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | sort | tr '\n' ' '; }
# same_a WHEN: a's e1 is still the interface it was (same ifindex, address).
same_a() {
  expect_link "${NETNS[a]}" e1 198.51.100.1/24
  [ "$(ifindex "${NETNS[a]}" e1)" = "$idx_a" ] || fail "${1}a's e1 changed ifindex: $idx_a -> $(ifindex "${NETNS[a]}" e1)"
}

# --- a on node1, first.
runp a 1 uid-a
ip_a=$(crictl_on 1 inspectp "${POD[a]}" | jq -r .status.network.ip)
[[ $ip_a == 203.0.113.* ]] || fail "pod a's IP should come from node1's ptp/host-local, got '$ip_a'"
expect_link "${NETNS[a]}" e1 198.51.100.1/24
[ "$(mtu "${NETNS[a]}" e1)" = 1450 ] || fail "a's e1 should have MTU 1450 (underlay 1500 - 50), has $(mtu "${NETNS[a]}" e1)"
retry 10 no_carrier "${NETNS[a]}" e1 || fail "a's e1 should have no carrier while b is missing: $(flags "${NETNS[a]}" e1)"
idx_a=$(ifindex "${NETNS[a]}" e1)
ok "a runs on node1 (first): CRI got ptp's eth0 IP $ip_a; e1 198.51.100.1/24 exists as soon as runp returns: up, marked, MTU 1450, no carrier"

# --- b on node2: a cross-node link.
runp b 2 uid-b
ip_b=$(crictl_on 2 inspectp "${POD[b]}" | jq -r .status.network.ip)
[[ $ip_b == 203.0.113.* ]] || fail "pod b's IP should come from node2's ptp/host-local, got '$ip_b'"
expect_link "${NETNS[b]}" w1 198.51.100.2/24
[ "$(mtu "${NETNS[b]}" w1)" = 1450 ] || fail "b's w1 should have MTU 1450, has $(mtu "${NETNS[b]}" w1)"
t=$(ts)
link_up "a on node1, b on node2: "
elapsed "b's runp until ping a<->b" "$t"
tunnels_each 1 || fail "traffic flows but the nodes have no tunnel: node1 '$(tunnels 1)', node2 '$(tunnels 2)'"
same_a
ok "b runs on node2 (IP $ip_b, w1 198.51.100.2/24, MTU 1450): ping a <-> b both ways across the tunnel (node1 $(tunnels 1)/ node2 $(tunnels 2))"

# --- b leaves node2 (stopp + rmp): a's cable is unplugged, e1 stays.
hold_netns "${NETNS[b]}" b-node2
rm_pod b
expect_no_ratchet "$W/held-b-node2" "b's old sandbox on node2"
retry 20 no_carrier "${NETNS[a]}" e1 || fail "after b's removal a's e1 should have no carrier: $(flags "${NETNS[a]}" e1)"
same_a "after b's removal: "
retry 20 tunnels_each 0 || fail "tunnels left after b's removal: node1 '$(tunnels 1)', node2 '$(tunnels 2)'"
ok "b stopped and removed on node2: nothing of ratchet's left in its sandbox (held); a's e1 stays (ifindex $idx_a) with no carrier; no tunnel left"

# --- b comes back on the other node, node1 (a new pod, new UID): the link
# is now a local one.
runp b 1 uid-b-2
expect_link "${NETNS[b]}" w1 198.51.100.2/24
link_up "b back on node1: "
same_a "b back on node1: "
retry 20 tunnels_each 0 || fail "tunnels left while a and b share node1: node1 '$(tunnels 1)', node2 '$(tunnels 2)'"
ok "b runs again on the other node, node1 (new UID): ping a <-> b both ways over a local link (no tunnel); a's e1 kept its ifindex"

# --- and back to node2: the tunnel again.
rm_pod b
runp b 2 uid-b-3
expect_link "${NETNS[b]}" w1 198.51.100.2/24
link_up "b back on node2: "
same_a "b back on node2: "
tunnels_each 1 || fail "no tunnel after b went back to node2: node1 '$(tunnels 1)', node2 '$(tunnels 2)'"
ok "b moved back to node2 (stopp + rmp on node1, runp on node2): ping a <-> b both ways across a tunnel again; a's e1 never changed (ifindex $idx_a)"

# --- tear down.
hold_netns "${NETNS[a]}" a
hold_netns "${NETNS[b]}" b
rm_pod a
rm_pod b
for n in 1 2; do
  [ -z "$(crictl_on "$n" pods -q)" ] || fail "pods left on node$n: $(crictl_on "$n" pods -q | tr '\n' ' ')"
done
expect_no_ratchet "$W/held-a" "pod a's netns"
expect_no_ratchet "$W/held-b" "pod b's netns"
retry 20 tunnels_each 0 || fail "tunnels left after every pod's removal: node1 '$(tunnels 1)', node2 '$(tunnels 2)'"
[ "$(park_links 1) / $(park_links 2)" = "lo  / lo " ] || fail "the parking netns should hold only lo: node1 '$(park_links 1)', node2 '$(park_links 2)'"
for n in 1 2; do expect_no_ratchet "${NODE_NETNS[$n]}" "node$n's netns"; done
left=$(etcdctl get "/ratchet-e2e-$CLIENT/ends/" --prefix --keys-only | grep -v '^$' | tr '\n' ' ' || true)
[ -z "$left" ] || fail "the registry still holds ends: $left"
ok "every pod stopped and removed: nothing of ratchet's in the pods' netns (held) or the nodes'; no tunnel, both parking netns hold only lo; no end left in etcd"

for n in 1 2; do
  ratchetd_stop "$n" # before its parking netns goes
  park=$(park_netns "$W/node$n/store")
  ip netns del "$park" || fail "ip netns del $park"
  [ ! -e "/var/run/netns/$park" ] || fail "/var/run/netns/$park still there after ip netns del"
done
ok "both agents stopped by PID; both nodes' parking netns removed (ratchet never deletes them)"
expect_real_host_untouched
