#!/usr/bin/env bash
# The ratchet demo: everything in throwaway network namespaces, nothing on
# the host. Two pods on one node get a veth link; two pods on two simulated
# nodes (namespaces joined by an underlay veth) get a VXLAN link. The plugin
# is run exactly as a runtime runs it: env vars in, config on stdin, result
# on stdout. Then it pings across both links, checks, deletes, and shows
# that nothing is left.
set -euo pipefail

BIN=${BIN:-$(cd "$(dirname "$0")/../.." && pwd)/bin}
RATCHET=$BIN/ratchet
[ -x "$RATCHET" ] || { echo "build first: make build" >&2; exit 1; }

tag=$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')
R1=demo-r1-$tag R2=demo-r2-$tag NODE_A=demo-node-a-$tag NODE_B=demo-node-b-$tag POD_A=demo-pod-a-$tag POD_B=demo-pod-b-$tag
STATE=$(mktemp -d /tmp/ratchet-demo.XXXXXX)
cleanup() {
  for n in $R1 $R2 $POD_A $POD_B $NODE_A $NODE_B; do ip netns del "$n" 2>/dev/null || true; done
  rm -rf "$STATE"
}
trap cleanup EXIT

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# cni NODE COMMAND POD CONFIG: run the plugin "on" NODE (or on this host
# when NODE is -) for the pod namespace POD.
cni() {
  local node=$1 cmd=$2 pod=$3 conf=$4 run=()
  [ "$node" = - ] || run=(ip netns exec "$node")
  CNI_COMMAND=$cmd CNI_CONTAINERID=$pod CNI_NETNS=/var/run/netns/$pod CNI_IFNAME=eth0 CNI_PATH=$BIN \
    "${run[@]}" "$RATCHET" <<<"$conf" 2>>"$STATE/ratchet.log"
}

for n in $R1 $R2 $NODE_A $NODE_B $POD_A $POD_B; do ip netns add "$n"; done

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

bold "3. traffic"
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

bold "4. CHECK, then DEL"
cni - CHECK "$R1" "$VETH_CONF" && echo "ok   CHECK r1"
cni "$NODE_A" CHECK "$POD_A" "$VX_A" && echo "ok   CHECK pod-a"
cni - DEL "$R1" "$VETH_CONF"
cni "$NODE_A" DEL "$POD_A" "$VX_A"
cni "$NODE_B" DEL "$POD_B" "$VX_B"
left=$(for n in $R1 $R2 $POD_A $POD_B; do ip -n "$n" -br link | awk '$1!="lo"{print $1}'; done)
if [ -n "$left" ]; then echo "FAIL left after DEL: $left"; status=1; else echo "ok   nothing left in any pod after DEL"; fi

if [ $status -ne 0 ]; then
  echo; echo "plugin log:"; cat "$STATE/ratchet.log"
  exit 1
fi
bold "demo passed"
