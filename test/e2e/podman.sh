#!/usr/bin/env bash
# podman.sh -- ratchet driven by podman 4.3 with its CNI network backend.
#
# podman is daemonless: the podman process runs the CNI plugins for ADD, and
# a `podman container cleanup` process (started by conmon when the container
# exits) runs DEL. Everything podman uses is private (containers.conf and
# storage.conf under $W, passed by env, which the cleanup process also
# gets), and podman runs in a throwaway host netns.
#
# ratchet is the only plugin of each network here ("first-plugin mode"):
#   network ratchet-e2e-b: no links                -> container B
#   network ratchet-e2e-a: in1 (A) <-> in2 (B)     -> container A, B given by
#                                                     its netns path (/run/netns/netns-...)
. "$(dirname "$0")/lib.sh"
e2e_init podman

need_pkgs podman runc busybox-static iproute2 iputils-ping jq util-linux
make_cni_bin
host_netns
busybox_image

podman_setup # private config and storage under $P; podman() runs in the host netns
podman_or_fail load -q -i "$BUSYBOX_TAR" >/dev/null
backend=$(podman info --format '{{.Host.NetworkBackend}}')
[ "$backend" = cni ] || fail "podman network backend is '$backend', want cni"

# run_container NAME NETWORK: a detached busybox container on NETWORK; sets
# NETNS[NAME] (podman's netns path for it) and ID[NAME].
declare -A NETNS ID
run_container() {
  local t
  t=$(ts)
  ID[$1]=$(podman_or_fail run -d --name "$1" --network "$2" localhost/busybox:local sleep 600)
  elapsed "podman run -d $1" "$t"
  NETNS[$1]=$(podman inspect -f '{{.NetworkSettings.SandboxKey}}' "$1")
  [ -e "${NETNS[$1]}" ] || fail "container $1: no netns (got '${NETNS[$1]}')"
}
in_container() { podman exec "$1" "${@:2}"; }
# del_seen NAME: ratchet logged a DEL for that container. podman's DEL may
# run in the cleanup process after `podman stop` returns: callers retry.
del_seen() { grep -q "msg=\"DEL done\".*container=${ID[$1]}" "$W/logs/ratchet.log"; }

# --- B: a network with ratchet alone and no links
conflist ratchet-e2e-b "$(ratchet_conf)" >"$P/cni-conf/ratchet-e2e-b.conflist"
run_container ratchet-e2e-b ratchet-e2e-b
B=${NETNS[ratchet-e2e-b]}
expect_no_ratchet "$B" "B"
ok "B runs on a ratchet network with no links (empty result accepted by podman)"

# --- A: a network whose one link goes to B's netns
conflist ratchet-e2e-a "$(ratchet_conf "$(link_to "$B")")" >"$P/cni-conf/ratchet-e2e-a.conflist"
run_container ratchet-e2e-a ratchet-e2e-a
A=${NETNS[ratchet-e2e-a]}
expect_link "$A" in1 "$A_IP4/24" "$A_IP6/64"
expect_link "$B" in2 "$B_IP4/24" "$B_IP6/64"
in_container ratchet-e2e-a ip -o addr show dev in1 | grep -qF "$A_IP4/24" || fail "busybox in A does not see in1 with $A_IP4"
ok "in1 is in container A, in2 in container B: up, addressed, marked 'alias ratchet:'"
ip_a=$(podman inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' ratchet-e2e-a)
[ "$ip_a" = "$A_IP4" ] || fail "podman inspect should report A's address $A_IP4 from ratchet's result, got '$ip_a'"
ok "podman reports ratchet's result: A's address is $ip_a"

traffic_flows "in_container ratchet-e2e-a" "in_container ratchet-e2e-b" container
ok "traffic flows between the containers over the ratchet veth (busybox ping via podman exec, IPv4 both ways, IPv6)"

# --- stop A: DEL while its netns still exists. We hold that netns open, so
# that what we find there afterwards is what DEL left.
hold_netns "$A" a
t=$(ts)
podman_or_fail stop -t 0 ratchet-e2e-a >/dev/null
retry 20 del_seen ratchet-e2e-a || fail "ratchet saw no DEL for A within 10 s of podman stop"
elapsed "podman stop A until ratchet's DEL" "$t"
expect_no_link "$W/held-a" in1
expect_no_link "$B" in2
expect_no_ratchet "$W/held-a" "A"
expect_no_ratchet "$B" "B"
expect_no_ratchet "$HOST_NETNS" "the host netns"
ok "after podman stop (DEL): in1 gone from A (netns held alive), in2 gone from B; no 'alias ratchet:' in A, B or host"

podman_or_fail rm ratchet-e2e-a >/dev/null
podman_or_fail stop -t 0 ratchet-e2e-b >/dev/null
retry 20 del_seen ratchet-e2e-b || fail "ratchet saw no DEL for B"
podman_or_fail rm ratchet-e2e-b >/dev/null
[ -z "$(podman ps -aq)" ] || fail "containers left: $(podman ps -aq | tr '\n' ' ')"
if [ -e "$A" ] || [ -e "$B" ]; then fail "podman left a netns handle"; fi
ok "both containers stopped (DEL ran for each) and removed; no netns handle left"
expect_real_host_untouched
