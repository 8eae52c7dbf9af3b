#!/usr/bin/env bash
# The ratchet demo: everything in throwaway network namespaces, nothing on
# the host. Two pods on one node get a veth link; two pods on two simulated
# nodes (namespaces joined by an underlay veth) get a VXLAN link; three pods
# declare a line of links in their annotations and are created in reverse
# order, then the middle one restarts; then the two nodes run etcd and a
# ratchetd each, and two pods on different nodes get a pod link across
# them, which follows one of them when it moves node. The plugin
# is run exactly as a runtime runs it: env vars in, config on stdin, result
# on stdout. Then it pings across both links, checks, deletes, and shows
# that nothing is left.
set -euo pipefail

BIN=${BIN:-$(cd "$(dirname "$0")/../.." && pwd)/bin}
RATCHET=$BIN/ratchet
RATCHETCTL=$BIN/ratchetctl
[ -x "$RATCHET" ] && [ -x "$RATCHETCTL" ] || { echo "build first: make build" >&2; exit 1; }

tag=$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')
R1=demo-r1-$tag R2=demo-r2-$tag NODE_A=demo-node-a-$tag NODE_B=demo-node-b-$tag POD_A=demo-pod-a-$tag POD_B=demo-pod-b-$tag
LINE=(demo-l1-$tag demo-l2-$tag demo-l3-$tag)
STATE=$(mktemp -d /tmp/ratchet-demo.XXXXXX)
# Pod links wait and meet in a parking netns that ratchet makes per store
# directory: ratchet-park-<first 8 hex digits of BLAKE2b-256(store.dir)>.
parking() { echo "ratchet-park-$(printf %s "$1" | b2sum -l 256 | cut -c1-8)"; }
PARKING=$(parking "$STATE/line")
PARK_A=$(parking "$STATE/node-a-pods") PARK_B=$(parking "$STATE/node-b-pods")
MN=(demo-m1-$tag demo-m2-$tag)
PIDS=() # the processes the demo starts (etcd, ratchetd): stopped by PID
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  for n in $R1 $R2 $POD_A $POD_B $NODE_A $NODE_B "${LINE[@]}" "${MN[@]}" $PARKING $PARK_A $PARK_B; do ip netns del "$n" 2>/dev/null || true; done
  rm -rf "$STATE"
}
trap cleanup EXIT

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# cni NODE COMMAND POD CONFIG: run the plugin "on" NODE (or on this host
# when NODE is -) for the pod namespace POD. nsenter --net, not ip netns
# exec: that one also gives the process a mount namespace of its own, in
# which the parking namespace ratchet pins under /run/netns on first use
# would vanish with the process. A runtime runs plugins in the host's.
cni() {
  local node=$1 cmd=$2 pod=$3 conf=$4 run=()
  [ "$node" = - ] || run=(nsenter --net=/var/run/netns/"$node")
  CNI_COMMAND=$cmd CNI_CONTAINERID=$pod CNI_NETNS=/var/run/netns/$pod CNI_IFNAME=eth0 CNI_PATH=$BIN \
    CNI_ARGS=${CNI_ARGS:-} "${run[@]}" "$RATCHET" <<<"$conf" 2>>"$STATE/ratchet.log"
}

for n in $R1 $R2 $NODE_A $NODE_B $POD_A $POD_B "${LINE[@]}" "${MN[@]}"; do ip netns add "$n"; done

bold "1. one node: r1 <-> r2 over a veth pair (a static peer.netns link)"
VETH_CONF='{
  "cniVersion": "1.0.0", "name": "demo-veth", "type": "ratchet",
  "store": {"dir": "'$STATE'/veth"},
  "links": [{
    "name": "in1", "ips": ["192.0.2.1/24", "2001:db8::1/64"],
    "peer": {"netns": "'$R2'", "name": "in2", "ips": ["192.0.2.2/24", "2001:db8::2/64"]}
  }]
}'
echo "$VETH_CONF"
echo "-- ADD result:"
cni - ADD "$R1" "$VETH_CONF"
echo
echo "-- r1: $(ip -n "$R1" -br addr show in1)"
echo "-- r2: $(ip -n "$R2" -br addr show in2)"

bold "2. two nodes: pod-a on node-a <-> pod-b on node-b over VXLAN"
ip link add underlay0 netns "$NODE_A" type veth peer name underlay0 netns "$NODE_B"
ip -n "$NODE_A" addr add 198.51.100.1/24 dev underlay0; ip -n "$NODE_A" link set underlay0 up
ip -n "$NODE_B" addr add 198.51.100.2/24 dev underlay0; ip -n "$NODE_B" link set underlay0 up
vxlan_conf() { # IP IPV6 REMOTE NODE
  echo '{
  "cniVersion": "1.0.0", "name": "demo-vxlan", "type": "ratchet",
  "store": {"dir": "'$STATE'/'$4'"},
  "links": [{"name": "vx0", "ips": ["'$1'", "'$2'"], "vxlan": {"remote": "'$3'", "vni": 42}}]
}'
}
VX_A=$(vxlan_conf 203.0.113.1/24 2001:db8:1::1/64 198.51.100.2 node-a)
VX_B=$(vxlan_conf 203.0.113.2/24 2001:db8:1::2/64 198.51.100.1 node-b)
echo "$VX_A"
echo "-- ADD on node-a:"
cni "$NODE_A" ADD "$POD_A" "$VX_A"
echo
cni "$NODE_B" ADD "$POD_B" "$VX_B" >/dev/null
echo "-- pod-a: $(ip -n "$POD_A" -br addr show vx0)"
echo "-- pod-a: $(ip -n "$POD_A" -d link show vx0 | grep -o 'vxlan id [0-9]* remote [0-9.]*') port 4789, mtu $(ip -n "$POD_A" -o link show vx0 | grep -o 'mtu [0-9]*' | cut -d' ' -f2) (underlay 1500 - 50)"
echo "-- the tunnel end was born in pod-a; node-a holds only: $(ip -n "$NODE_A" -br link | awk '$1!="lo"{sub(/@.*/, "", $1); print $1}' | tr '\n' ' ')"

bold "3. pod links: a line r1 -- r2 -- r3 declared by pod annotations, created in reverse order"
# What containerd's CRI hands the plugin: the pod's identity in CNI_ARGS and
# its annotations in runtimeConfig (the plugin declares the capability).
line_conf() { # ANNOTATION-JSON
  jq -n --arg links "$1" --arg dir "$STATE/line" '{
    cniVersion: "1.0.0", name: "demo-line", type: "ratchet", store: {dir: $dir},
    capabilities: {"io.kubernetes.cri.pod-annotations": true},
    runtimeConfig: {"io.kubernetes.cri.pod-annotations": {"ratchet.cni.dev/links": $links}}}'
}
L1='[{"name":"e1","ips":["192.0.2.65/30"],"peer":{"pod":"r2","name":"w1"}}]'
L2='[{"name":"w1","ips":["192.0.2.66/30"],"peer":{"pod":"r1","name":"e1"}},
     {"name":"e1","ips":["192.0.2.69/30"],"peer":{"pod":"r3","name":"w1"}}]'
L3='[{"name":"w1","ips":["192.0.2.70/30"],"peer":{"pod":"r2","name":"e1"}}]'
line_pod() { # COMMAND INDEX(1..3) ANNOTATION
  CNI_ARGS="K8S_POD_NAMESPACE=lab;K8S_POD_NAME=r$2;K8S_POD_UID=demo-$2" cni - "$1" "${LINE[$2-1]}" "$(line_conf "$3")" >/dev/null
}
echo "r1 annotation ratchet.cni.dev/links: $L1"
echo "r2 annotation ratchet.cni.dev/links: $(tr -s ' \n' ' ' <<<"$L2")"
echo "r3 annotation ratchet.cni.dev/links: $L3"
for i in 3 2 1; do
  line_pod ADD $i "$(eval echo "\$L$i")"
  echo "-- ADD r$i: r$i holds $(ip -n "${LINE[$i-1]}" -br link | awk '$1!="lo"{sub(/@.*/, "", $1); printf "%s ", $1}')"
  "$RATCHETCTL" links --store "$STATE/line" | sed -n '/^STATE/,$p' | sed 's/^/     /'
done

bold "4. traffic"
status=0
ping_from() { # NETNS ADDR LABEL
  if ip netns exec "$1" ping -c 2 -i 0.2 -W 2 "$2" >/dev/null 2>&1; then
    echo "ok   $3: ping $2"
  else
    echo "FAIL $3: ping $2"; status=1
  fi
}
ping_from "$R1" 192.0.2.2 "r1 -> r2 (veth, IPv4)"
ping_from "$R1" 2001:db8::2 "r1 -> r2 (veth, IPv6)"
ping_from "$POD_A" 203.0.113.2 "pod-a -> pod-b (vxlan, IPv4)"
ping_from "$POD_A" 2001:db8:1::2 "pod-a -> pod-b (vxlan, IPv6)"
ping_from "${LINE[0]}" 192.0.2.66 "r1 -> r2 (pod link)"
ping_from "${LINE[2]}" 192.0.2.69 "r3 -> r2 (pod link)"

bold "5. restart r2: its neighbours keep their interfaces, carrier down, until it is back"
idx_before=$(ip -n "${LINE[0]}" -o link show e1 | cut -d: -f1)
line_pod DEL 2 ""
echo "-- r2 deleted: r1 $(ip -n "${LINE[0]}" -o link show e1 | grep -o 'state [A-Z]*'), ifindex $idx_before"
"$RATCHETCTL" links --store "$STATE/line" | sed -n '/^STATE/,$p' | sed 's/^/     /'
ip netns del "${LINE[1]}"; ip netns add "${LINE[1]}"
line_pod ADD 2 "$L2"
idx_after=$(ip -n "${LINE[0]}" -o link show e1 | cut -d: -f1)
[ "$idx_before" = "$idx_after" ] && echo "ok   r1's e1 kept ifindex $idx_after" || { echo "FAIL r1's e1 changed ifindex"; status=1; }
ping_from "${LINE[0]}" 192.0.2.66 "r1 -> r2 (pod link, after the restart)"
ping_from "${LINE[2]}" 192.0.2.69 "r3 -> r2 (pod link, after the restart)"

bold "6. two nodes with etcd: a pod link across nodes, and a pod that moves"
# etcd runs on node-a (Debian's etcd-server), a ratchetd on each node. Each
# node keeps its own local store; the agents share the cluster through etcd
# and make the tunnels of links whose pods are on different nodes.
for n in $NODE_A $NODE_B; do ip -n "$n" link set lo up; done
# Plaintext etcd on the demo's private underlay: the configs say so with
# store.insecure (docs/multinode.md sets etcd up with TLS and per-node users).
ETCD=http://198.51.100.1:23790
ip netns exec "$NODE_A" etcd --name demo --data-dir "$STATE/etcd" --listen-client-urls $ETCD --advertise-client-urls $ETCD \
  --listen-peer-urls http://198.51.100.1:23800 --initial-advertise-peer-urls http://198.51.100.1:23800 \
  --initial-cluster demo=http://198.51.100.1:23800 --log-level warn --logger zap >"$STATE/etcd.log" 2>&1 &
PIDS+=($!)
mn_conf() { # NODE [ANNOTATION-JSON]
  jq -n --arg node "$1" --arg links "${2:-}" --arg state "$STATE" --arg etcd $ETCD '{
    cniVersion: "1.1.0", name: "demo-multinode", type: "ratchet",
    store: {type: "etcd", endpoints: [$etcd], insecure: true, prefix: "/ratchet-demo",
            dir: ($state + "/" + $node + "-pods"), agentSocket: ($state + "/" + $node + ".sock")},
    node: {name: $node, vtepDev: "underlay0"}, vxlan: {underlayCIDRs: ["198.51.100.0/24"]},
    capabilities: {"io.kubernetes.cri.pod-annotations": true}}
    + (if $links == "" then {} else {runtimeConfig: {"io.kubernetes.cri.pod-annotations": {"ratchet.cni.dev/links": $links}}} end)'
}
mn_conf node-a >"$STATE/node-a.conf"
mn_conf node-b >"$STATE/node-b.conf"
echo "node-a's network config (ratchetd --config reads the same file):"
cat "$STATE/node-a.conf"
for n in a b; do
  node=NODE_${n^^}
  ip netns exec "${!node}" "$BIN/ratchetd" --config "$STATE/node-$n.conf" --resync 5s >"$STATE/ratchetd-$n.log" 2>&1 &
  PIDS+=($!)
done
for n in a b; do # STATUS answers 0 once the agent reaches etcd
  for i in $(seq 101); do
    if CNI_COMMAND=STATUS CNI_PATH=$BIN "$RATCHET" <"$STATE/node-$n.conf" >/dev/null 2>&1; then break; fi
    [ "$i" -lt 101 ] || { echo "FAIL ratchetd on node-$n is not ready:"; cat "$STATE/ratchetd-$n.log"; exit 1; }
    sleep 0.1
  done
done
echo "-- etcd on node-a, ratchetd on both nodes: STATUS 0"
M1='[{"name":"e1","ips":["203.0.113.65/30"],"peer":{"pod":"m2","name":"w1"}}]'
M2='[{"name":"w1","ips":["203.0.113.66/30"],"peer":{"pod":"m1","name":"e1"}}]'
mn_pod() { # COMMAND a|b INDEX(1..2) [ANNOTATION]: on node-a or node-b
  local node=NODE_${2^^}
  local out
  out=$(CNI_ARGS="K8S_POD_NAMESPACE=lab;K8S_POD_NAME=m$3" cni "${!node}" "$1" "${MN[$3-1]}" "$(mn_conf "node-$2" "${4:-}")") ||
    { echo "FAIL $1 m$3 on node-$2: $out"; exit 1; }
}
# wait_carrier NETNS IFNAME: the agents complete a tunnel after ADD.
wait_carrier() {
  for _ in $(seq 100); do
    if ip -n "$1" -o link show "$2" | grep -q LOWER_UP; then return 0; fi
    sleep 0.1
  done
  echo "FAIL no carrier on $2"; status=1
}
mn_pod ADD a 1 "$M1"
mn_pod ADD b 2 "$M2"
echo "-- ADD m1 on node-a, m2 on node-b: m1's e1 $(ip -n "${MN[0]}" -o link show e1 | grep -o 'mtu [0-9]*') (the tunnel's)"
wait_carrier "${MN[0]}" e1
echo "-- node-a's parking netns holds the tunnel: $(ip -n "$PARK_A" -d -o link show type vxlan | grep -o 'rvx[0-9]*\|vxlan id [0-9]* remote [0-9.]*' | tr '\n' ' ')"
ping_from "${MN[0]}" 203.0.113.66 "m1 (node-a) -> m2 (node-b) (pod link over VXLAN)"
echo "-- ratchetctl links on node-a:"
"$RATCHETCTL" links --store "$STATE/node-a-pods" | sed -n '/^STATE/,$p' | sed 's/^/     /'
idx_m1=$(ip -n "${MN[0]}" -o link show e1 | cut -d: -f1)
mn_pod DEL b 2
ip netns del "${MN[1]}"; ip netns add "${MN[1]}"
mn_pod ADD a 2 "$M2"
for _ in $(seq 50); do # the agent removes the tunnel nobody needs now
  [ "$(ip -n "$PARK_A" -o link show type vxlan | wc -l)" = 0 ] && break
  sleep 0.1
done
echo "-- m2 moved to node-a: the link is local now; tunnels left on node-a: $(ip -n "$PARK_A" -o link show type vxlan | wc -l)"
ping_from "${MN[0]}" 203.0.113.66 "m1 -> m2 (both on node-a)"
mn_pod DEL a 2
ip netns del "${MN[1]}"; ip netns add "${MN[1]}"
mn_pod ADD b 2 "$M2"
wait_carrier "${MN[0]}" e1
ping_from "${MN[0]}" 203.0.113.66 "m1 -> m2 (m2 back on node-b)"
[ "$idx_m1" = "$(ip -n "${MN[0]}" -o link show e1 | cut -d: -f1)" ] && echo "ok   m1's e1 kept ifindex $idx_m1 through both moves" || { echo "FAIL m1's e1 changed"; status=1; }
mn_pod DEL a 1
mn_pod DEL b 2

bold "7. CHECK, then DEL"
cni - CHECK "$R1" "$VETH_CONF" && echo "ok   CHECK r1"
cni "$NODE_A" CHECK "$POD_A" "$VX_A" && echo "ok   CHECK pod-a"
cni - DEL "$R1" "$VETH_CONF"
cni "$NODE_A" DEL "$POD_A" "$VX_A"
cni "$NODE_B" DEL "$POD_B" "$VX_B"
for i in 1 2 3; do line_pod DEL $i ""; done
left=$(for n in $R1 $R2 $POD_A $POD_B "${LINE[@]}" "${MN[@]}" $PARKING; do ip -n "$n" -br link | awk '$1!="lo"{print $1}'; done)
if [ -n "$left" ]; then echo "FAIL left after DEL: $left"; status=1; else echo "ok   nothing left in any pod after DEL"; fi

if [ $status -ne 0 ]; then
  echo; echo "plugin log:"; cat "$STATE/ratchet.log"
  for f in "$STATE"/ratchetd-*.log "$STATE/etcd.log"; do [ -f "$f" ] && { echo "$f:"; tail -20 "$f"; }; done
  exit 1
fi
bold "demo passed"
