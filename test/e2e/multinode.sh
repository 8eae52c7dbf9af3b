#!/usr/bin/env bash
# multinode.sh -- pod links across nodes: the etcd store and ratchetd, the
# node agent, with real processes only.
#
# Two simulated nodes are two netns on an underlay (a bridge in a third,
# "lan" netns): node1 192.0.2.1/24, node2 192.0.2.2/24, default route via
# the lan 192.0.2.254, where Debian's etcd listens (data under $W/etcd).
# Each node runs its own ratchetd (`ratchetd --config` with that node's
# network config: store type etcd, its own local store dir and agent socket
# under $W/nodeN, node.name nodeN). Pods are plain netns; the plugin runs
# "on" a node as a runtime there would: exec'd in the node's netns, with the
# pod's links in the runtimeConfig annotations (as containerd's CRI passes
# them) and K8S_POD_* in CNI_ARGS.
#
#   a (node1) e1 198.51.100.1/24 <-> 198.51.100.2/24 w1 b (node2)
#   c (node1) e1 198.51.100.9/30 <-> 198.51.100.10/30 w1 d (node2)
#
# The cross-node links are VXLAN tunnels between the nodes' parking netns,
# completed by the agents asynchronously: traffic is polled for (with a
# timeout), and so are the agents' reactions. Facts proven: ping both ways
# over a tunnel, MTU 1450 (underlay 1500 - 50); the peer's DEL unplugs the
# cable (same ifindex, no carrier) and its return (on the other node, then
# on the same node as its peer, then back) plugs it in again; with etcd
# killed ADD fails with code 11 leaving nothing and STATUS says 50, and with
# etcd back ADD works; restarting both agents disturbs neither traffic nor
# tunnels (same ifindex). At the end nothing is left: DEL of every pod
# removes the tunnels and the registry's ends; agents and etcd are stopped by
# PID and the nodes' parking netns removed.
. "$(dirname "$0")/lib.sh"
e2e_init multinode

need_pkgs iproute2 iputils-ping jq util-linux etcd-server etcd-client nftables
[ -x "$BIN/ratchetd" ] || fail "no ratchetd binary in BIN=$BIN (run: make build)"
[ -x "$BIN/ratchetctl" ] || fail "no ratchetctl binary in BIN=$BIN (run: make build)"

# Registered before the agents start: the parking netns go after them.
parking_of_nodes 2

underlay_setup 2
etcd_start
on_exit etcd_stop
for n in 1 2; do
  mkdir -p "$W/node$n"
  node_conf "$n" | jq '. + {cniVersion: "1.1.0", name: "lab"}' >"$W/node$n.conf"
  ratchetd_start "$n" "$W/node$n.conf"
  on_exit "ratchetd_stop $n"
done

# --- the plugin, exec'd on a node as a runtime there does.
# plugin NODE CMD ID NETNS_PATH POD [LINKS_JSON]: stdout in $W/out; returns
# the plugin's exit status.
plugin() {
  local node=$1 cmd=$2 id=$3 nsp=$4 pod=$5 links=${6:-} conf
  conf=$(jq -c --arg links "$links" '. + if $links == "" then {} else
      {runtimeConfig: {"io.kubernetes.cri.pod-annotations": {"ratchet.cni.dev/links": $links}}} end' "$W/node$node.conf")
  on_node "$node" env -i PATH="$PATH" CNI_COMMAND="$cmd" CNI_CONTAINERID="$id" CNI_NETNS="$nsp" CNI_IFNAME=eth0 \
    CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=lab;K8S_POD_NAME=$pod;K8S_POD_UID=uid-$id" CNI_PATH="$BIN" \
    "$BIN/ratchet" <<<"$conf" >"$W/out" 2>>"$W/logs/plugin-stderr.log"
}
# status NODE: STATUS's exit status; its output in $W/out.
status() { plugin "$1" STATUS "" "" ""; }
# code: the CNI error code in $W/out (0 if none).
code() { jq -r '.code // 0' "$W/out" 2>/dev/null || echo 0; }

declare -A LINKS POD_NODE POD_NETNS POD_ID GEN
LINKS[a]='[{"name":"e1","ips":["198.51.100.1/24"],"peer":{"pod":"b","name":"w1"}}]'
LINKS[b]='[{"name":"w1","ips":["198.51.100.2/24"],"peer":{"pod":"a","name":"e1"}}]'
LINKS[c]='[{"name":"e1","ips":["198.51.100.9/30"],"peer":{"pod":"d","name":"w1"}}]'
LINKS[d]='[{"name":"w1","ips":["198.51.100.10/30"],"peer":{"pod":"c","name":"e1"}}]'

# new_sandbox POD NODE: a new netns for pod POD on node NODE (a new sandbox:
# new container id), with a DEL for it on exit (DEL is idempotent).
new_sandbox() {
  local gen=$((${GEN[$1]:-0} + 1)) name
  GEN[$1]=$gen
  name=ratchet-e2e-$CLIENT-$1-$gen-$$
  new_netns "$name"
  POD_NETNS[$1]=/var/run/netns/$name POD_NODE[$1]=$2 POD_ID[$1]=sandbox-$1-$gen
  on_exit "plugin $2 DEL '${POD_ID[$1]}' '${POD_NETNS[$1]}' $1"
}
# add POD NODE: a new sandbox for POD on NODE and its ADD, which must succeed.
add() {
  local t
  new_sandbox "$1" "$2"
  t=$(ts)
  plugin "$2" ADD "${POD_ID[$1]}" "${POD_NETNS[$1]}" "$1" "${LINKS[$1]}" ||
    fail "ADD $1 on node$2: $(cat "$W/out")"
  elapsed "ADD $1 on node$2" "$t"
}
# del POD: DEL of POD's current sandbox on its node, which must succeed.
del() {
  local t
  t=$(ts)
  plugin "${POD_NODE[$1]}" DEL "${POD_ID[$1]}" "${POD_NETNS[$1]}" "$1" "${LINKS[$1]}" ||
    fail "DEL $1 on node${POD_NODE[$1]}: $(cat "$W/out")"
  elapsed "DEL $1 on node${POD_NODE[$1]}" "$t"
}

# Link facts, read with the host's iproute2 inside a netns.
flags() { nsenter --net="$1" ip -o link show dev "$2" | grep -o '<[^>]*>'; }
ifindex() { nsenter --net="$1" ip -o link show dev "$2" | cut -d: -f1; }
mtu() { nsenter --net="$1" ip -o link show dev "$2" | grep -o 'mtu [0-9]*' | cut -d' ' -f2; }
no_carrier() { flags "$1" "$2" | grep -q NO-CARRIER && ! flags "$1" "$2" | grep -q LOWER_UP; }
has_carrier() { flags "$1" "$2" | grep -q LOWER_UP; }
# pings POD ADDR [SECONDS]: ping from pod POD's netns, polling (the agents
# complete a tunnel asynchronously) for SECONDS (default 10).
ping1() { nsenter --net="${POD_NETNS[$1]}" ping -n -c 1 -W 0.5 "$2"; }
pings() { eventually "${3:-10}" ping1 "$1" "$2"; }
# links_up A B A_ADDR B_ADDR WHEN: ping both ways over the link A <-> B.
links_up() {
  local t
  t=$(ts)
  pings "$1" "$4" || fail "${5:-}$1 (node${POD_NODE[$1]}) cannot ping $2 ($4)"
  pings "$2" "$3" || fail "${5:-}$2 (node${POD_NODE[$2]}) cannot ping $1 ($3)"
  elapsed "${5:-}ping $1 <-> $2" "$t"
}
# eventually SECONDS CMD...: poll CMD every 0.1 s until it succeeds.
eventually() {
  local end=$(($(ts) + $1 * 1000000))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$(ts)" -lt "$end" ] || return 1
    sleep 0.1
  done
}
# no_tunnels I: node I has no tunnel left.
no_tunnels() { [ -z "$(tunnels "$1")" ]; }
park_links() { nsenter --net="$(parking_of "$1")" ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | sort | tr '\n' ' '; }
vnis() { etcdctl get "/ratchet-e2e-$CLIENT/vni/" --prefix --keys-only | grep -o '[0-9]*$' | sort -n | tr '\n' ' '; }
ends() { etcdctl get "/ratchet-e2e-$CLIENT/ends/" --prefix --keys-only | grep -v '^$' | tr '\n' ' ' || true; }
no_ends() { [ -z "$(ends)" ]; }

# --- both nodes' agents reach etcd.
for n in 1 2; do
  status "$n" || fail "STATUS on node$n: $(cat "$W/out")"
done
ok "etcd in the lan netns and one ratchetd per node (node1 192.0.2.1, node2 192.0.2.2): STATUS (cniVersion 1.1.0) returns 0 on both nodes"

# --- a on node1, first: its peer b does not exist yet.
add a 1
A=${POD_NETNS[a]}
# The annotation link's address is not in the result's ips: no annotation
# chooses a pod IP (README, "Pod links"); the interface itself has it.
jq -e --arg A "$A" '[.interfaces[] | {name, sandbox}] == [{name: "e1", sandbox: $A}] and
    ((.ips // []) | length) == 0 and (.interfaces[0].mac | test("^[0-9a-f]{2}(:[0-9a-f]{2}){5}$"))' "$W/out" >/dev/null ||
  fail "a's ADD result should be e1 (sandbox a, with a MAC) and no pod IP, got: $(jq -c . "$W/out")"
expect_link "$A" e1 198.51.100.1/24
[ "$(mtu "$A" e1)" = 1450 ] || fail "a's e1 should have MTU 1450 (underlay 1500 - 50 for VXLAN), has $(mtu "$A" e1)"
retry 10 no_carrier "$A" e1 || fail "a's e1 should have no carrier while b is missing: $(flags "$A" e1)"
ok "a on node1 (first): ADD returns e1 at once (result: e1, sandbox a, MAC, no pod IP); e1 has 198.51.100.1/24, is up, marked, MTU 1450, no carrier"
idx_a=$(ifindex "$A" e1)

# --- b on node2: the agents make the tunnel.
add b 2
B=${POD_NETNS[b]}
expect_link "$B" w1 198.51.100.2/24
[ "$(mtu "$B" w1)" = 1450 ] || fail "b's w1 should have MTU 1450, has $(mtu "$B" w1)"
t=$(ts)
links_up a b 198.51.100.1 198.51.100.2
elapsed "b's ADD until ping a<->b" "$t"
has_carrier "$A" e1 || fail "a's e1 has no carrier while traffic flows: $(flags "$A" e1)"
ok "b on node2: w1 198.51.100.2/24, MTU 1450; ping crosses the tunnel both ways (a->b, b->a)"

eventually 10 tunnels_each 1 || fail "tunnels: node1 '$(tunnels 1)', node2 '$(tunnels 2)'"
t1=$(tunnels 1) t2=$(tunnels 2) v=$(vnis)
[ "$(wc -w <<<"$t1") $(wc -w <<<"$t2") $(wc -w <<<"$v")" = "1 1 1" ] ||
  fail "want one tunnel on each node and one VNI: node1 '$t1', node2 '$t2', etcd VNIs '$v'"
{ [ "${t1%%:*}" = "${t2%%:*}" ] && [ "${t1%%:*}" = "rvx${v% }" ]; } ||
  fail "both nodes' tunnels should be rvx<the link's VNI>: node1 '$t1', node2 '$t2', VNI '$v'"
ok "one tunnel on each node, both ${t1%%:*} (vxlan in the node's parking netns), the VNI etcd allocated for the link"

# The tunnel filter: each agent let both nodes' VTEPs, and no other
# address, reach its VXLAN port (docs/multinode.md, the tunnel filter).
for n in 1 2; do
  fw=$(ip netns exec "${NODE_NS[n]}" nft list table inet ratchet) || fail "node$n: no table inet ratchet"
  grep -q 'elements = { 192.0.2.1, 192.0.2.2 }' <<<"$fw" || fail "node$n's filter should let in exactly the two nodes: $fw"
  grep -q 'udp dport 4789 ip saddr != @nodes4 counter packets [0-9]* bytes [0-9]* drop' <<<"$fw" ||
    fail "node$n's filter should drop UDP to 4789 from other addresses: $fw"
done
ok "each node's ratchetd filters its VXLAN port: table inet ratchet lets in 192.0.2.1 and 192.0.2.2 only"

plugin 1 CHECK "${POD_ID[a]}" "$A" a "${LINKS[a]}" || fail "CHECK a on node1: $(cat "$W/out")"
plugin 2 CHECK "${POD_ID[b]}" "$B" b "${LINKS[b]}" || fail "CHECK b on node2: $(cat "$W/out")"
ok "CHECK passes for a on node1 and b on node2"

# --- b goes: a's cable is unplugged, its interface stays.
hold=$B
del b
expect_no_link "$hold" w1
expect_no_ratchet "$hold" "b's old netns"
eventually 10 no_carrier "$A" e1 || fail "after b's DEL, a's e1 should have no carrier: $(flags "$A" e1)"
[ "$(ifindex "$A" e1)" = "$idx_a" ] || fail "a's e1 changed ifindex after b's DEL: $idx_a -> $(ifindex "$A" e1)"
expect_link "$A" e1 198.51.100.1/24
eventually 10 no_tunnels 1 || fail "node1 keeps a tunnel to a peer that is gone: $(tunnels 1)"
eventually 10 no_tunnels 2 || fail "node2 keeps a tunnel after b's DEL: $(tunnels 2)"
ok "b's DEL: w1 gone from b's netns; a's e1 stays (ifindex $idx_a, address, up) with no carrier; no tunnel left on either node"

# --- b comes back, on node2 again (a new sandbox).
add b 2
links_up a b 198.51.100.1 198.51.100.2 "b back on node2: "
[ "$(ifindex "$A" e1)" = "$idx_a" ] || fail "a's e1 changed ifindex: $idx_a -> $(ifindex "$A" e1)"
ok "b back on node2 (new sandbox): ping both ways again; a's e1 kept its ifindex"

# --- b moves to node1, a's node: the link becomes a local one, the tunnels go.
del b
add b 1
links_up a b 198.51.100.1 198.51.100.2 "b moved to node1: "
eventually 10 tunnels_each 0 || fail "tunnels left after b joined a's node: node1 '$(tunnels 1)', node2 '$(tunnels 2)'"
[ "$(ifindex "$A" e1)" = "$idx_a" ] || fail "a's e1 changed ifindex: $idx_a -> $(ifindex "$A" e1)"
ok "b moved to node1: the link is local (no tunnel on either node), ping both ways; a's e1 kept its ifindex"

# --- and back to node2.
del b
add b 2
links_up a b 198.51.100.1 198.51.100.2 "b moved back to node2: "
[ "$(ifindex "$A" e1)" = "$idx_a" ] || fail "a's e1 changed ifindex: $idx_a -> $(ifindex "$A" e1)"
eventually 10 tunnels_each 1 || fail "no tunnel after b moved back: node1 '$(tunnels 1)', node2 '$(tunnels 2)'"
ok "b moved back to node2: a tunnel again on each node ($(tunnels 1 | cut -d: -f1)), ping both ways; a's e1 kept its ifindex"
ab1=$(tunnels 1) ab2=$(tunnels 2) # the a-b tunnel, name:ifindex, on each node

# --- etcd dies.
park1_before=$(park_links 1)
etcd_stop KILL
ping1 a 198.51.100.2 >/dev/null || fail "with etcd down, a cannot ping b: existing tunnels should not need etcd"
t=$(ts)
if status 1; then fail "STATUS on node1 with etcd down should fail, returned 0"; fi
[ "$(code)" = 50 ] || fail "STATUS with etcd down: want code 50, got: $(cat "$W/out")"
elapsed "STATUS with etcd down" "$t"
new_sandbox c 1
t=$(ts)
if plugin 1 ADD "${POD_ID[c]}" "${POD_NETNS[c]}" c "${LINKS[c]}"; then fail "ADD c with etcd down should fail, it succeeded: $(cat "$W/out")"; fi
[ "$(code)" = 11 ] || fail "ADD with etcd down: want code 11 (try again later), got: $(cat "$W/out")"
elapsed "ADD with etcd down (fails)" "$t"
left=$(nsenter --net="${POD_NETNS[c]}" ip -o link show | awk -F': ' '{print $2}' | tr '\n' ' ')
[ "$left" = "lo " ] || fail "the failed ADD left netdevs in c's netns: $left"
[ "$(park_links 1)" = "$park1_before" ] || fail "the failed ADD changed node1's parking netns: '$park1_before' -> '$(park_links 1)'"
"$BIN/ratchetctl" links --store "$W/node1/store" >"$W/links.txt" 2>&1 || fail "ratchetctl links --store node1: $(cat "$W/links.txt")"
if grep -q 'lab/c' "$W/links.txt"; then fail "the failed ADD left pod c in node1's store: $(tr '\n' '|' <"$W/links.txt")"; fi
plugin 1 DEL "${POD_ID[c]}" "${POD_NETNS[c]}" c "${LINKS[c]}" || fail "DEL c with etcd down: $(cat "$W/out")"
ok "etcd killed: existing traffic still flows; STATUS returns 50; ADD fails with code 11 and leaves nothing (c's netns holds only lo, node1's parking netns and store unchanged); DEL still succeeds"

# --- etcd back: everything works again.
etcd_start
eventually 15 status 1 || fail "STATUS on node1 after etcd's restart: $(cat "$W/out")"
eventually 15 status 2 || fail "STATUS on node2 after etcd's restart: $(cat "$W/out")"
add c 1
add d 2
C=${POD_NETNS[c]} D=${POD_NETNS[d]}
expect_link "$C" e1 198.51.100.9/30
expect_link "$D" w1 198.51.100.10/30
links_up c d 198.51.100.9 198.51.100.10 "after etcd's restart: "
ping1 a 198.51.100.2 >/dev/null || fail "after etcd's restart a cannot ping b"
eventually 10 tunnels_each 2 ||
  fail "want two tunnels on each node: node1 '$(tunnels 1)', node2 '$(tunnels 2)'"
[[ " $(tunnels 1)" == *" $ab1"* && " $(tunnels 2)" == *" $ab2"* ]] ||
  fail "etcd's outage replaced the a-b tunnel (name:ifindex): node1 '$ab1' -> '$(tunnels 1)', node2 '$ab2' -> '$(tunnels 2)'"
{ [ "$(tunnels 1 | sed 's/:[0-9]*//g')" = "$(tunnels 2 | sed 's/:[0-9]*//g')" ] && [ "$(wc -w <<<"$(vnis)")" = 2 ]; } ||
  fail "both nodes should have the same two tunnels, one per VNI: node1 '$(tunnels 1)', node2 '$(tunnels 2)', VNIs '$(vnis)'"
ok "etcd restarted: STATUS 0 on both nodes; ADD works (c on node1 <-> d on node2, ping both ways); a <-> b still up, over the same tunnel netdevs; two tunnels per node, distinct VNIs $(vnis)"

# --- both agents restart: the kernel carries on alone, and the new agents
# adopt the tunnels they find (same ifindex) instead of remaking them. We
# know that each new agent has reconciled once it has reacted to a change
# only it can act on: d's DEL unplugs c's cable and removes node1's c-d
# tunnel (node1's agent), d's new ADD needs node2's side of the tunnel
# (node2's agent). An agent's first reconcile is a full one, so by then it
# has looked at the a-b tunnel too.
nsenter --net="$A" ping -n -q -i 0.2 -c 15 -W 1 198.51.100.2 >"$W/ping-restart.txt" 2>&1 &
pinger=$!
on_exit "kill $pinger"
sleep 0.3
t=$(ts)
ratchetd_stop 1
ratchetd_stop 2
ping1 c 198.51.100.10 >/dev/null || fail "with both agents stopped, c cannot ping d"
ratchetd_start 1 "$W/node1.conf"
ratchetd_start 2 "$W/node2.conf"
elapsed "agents' restart" "$t"
del d
c_unplugged() { no_carrier "$C" e1 && [ "$(tunnels 1)" = "$ab1" ]; }
eventually 10 c_unplugged || fail "node1's restarted agent did not react to d's DEL: c's e1 $(flags "$C" e1), node1's tunnels '$(tunnels 1)' (want '$ab1')"
add d 2
links_up c d 198.51.100.9 198.51.100.10 "after the agents' restart and d's new ADD: "
eventually 10 tunnels_each 2 || fail "want two tunnels on each node: node1 '$(tunnels 1)', node2 '$(tunnels 2)'"
elapsed "agents' restart until both reconciled" "$t"
wait "$pinger" || fail "ping a->b across the agents' restart lost packets: $(tail -2 "$W/ping-restart.txt" | tr '\n' ' ')"
grep -q ' 0% packet loss' "$W/ping-restart.txt" || fail "ping a->b across the agents' restart: $(tail -2 "$W/ping-restart.txt" | tr '\n' ' ')"
[[ " $(tunnels 1)" == *" $ab1"* && " $(tunnels 2)" == *" $ab2"* ]] ||
  fail "the restarted agents replaced the a-b tunnel (name:ifindex): node1 '$ab1' -> '$(tunnels 1)', node2 '$ab2' -> '$(tunnels 2)'"
links_up a b 198.51.100.1 198.51.100.2 "after the agents' restart: "
ok "both ratchetd restarted (stopped by PID, started again): c <-> d pings with no agent; ping a->b every 0.2 s across the restart lost nothing; the new agents work (d's DEL unplugs c, its new ADD gets a tunnel and pings) and kept the a-b tunnel (node1 ${ab1}/ node2 ${ab2}: same name and ifindex)"

# --- tear down: DEL every pod; the agents then remove every tunnel.
for p in a b c d; do hold_netns "${POD_NETNS[$p]}" "$p"; done
for p in a b c d; do del "$p"; done
for p in a b c d; do expect_no_ratchet "$W/held-$p" "pod $p's netns"; done
eventually 10 tunnels_each 0 || fail "tunnels left after every DEL: node1 '$(tunnels 1)', node2 '$(tunnels 2)'"
[ "$(park_links 1) / $(park_links 2)" = "lo  / lo " ] || fail "the parking netns should hold only lo: node1 '$(park_links 1)', node2 '$(park_links 2)'"
eventually 10 no_ends || fail "the registry still holds ends: $(ends)"
for n in 1 2; do expect_no_ratchet "${NODE_NETNS[$n]}" "node$n's netns"; done
expect_no_ratchet /proc/self/ns/net "the real host netns"
ok "every pod deleted: nothing of ratchet's in the pods' netns (held) or the nodes'; no tunnel left, both parking netns hold only lo; no end left in etcd"

ratchetd_stop 1
ratchetd_stop 2
etcd_stop
for n in 1 2; do
  park=$(park_netns "$W/node$n/store")
  ip netns del "$park" || fail "ip netns del $park"
  [ ! -e "/var/run/netns/$park" ] || fail "/var/run/netns/$park still there after ip netns del"
done
left=$(pids_mentioning "$W/")
[ -z "$left" ] || fail "processes left: $left"
ok "agents and etcd stopped by PID, no process left; both nodes' parking netns removed"
expect_real_host_untouched
