#!/usr/bin/env bash
# cnitool.sh -- ratchet driven by cnitool, libcni's own command-line client.
#
# The two "containers" are plain `ip netns add` namespaces, A and B; cnitool
# runs in a throwaway host netns. Three networks:
#   solo: ratchet alone, no links        -> ADD on B returns an empty result
#   pair: ratchet alone, one link        -> first-plugin mode: in1 (A) <-> in2 (B),
#                                           B given by its netns path
#   lab:  ptp + host-local, then ratchet -> chained mode: ptp's eth0, plus the
#         with the same link                same link appended to ptp's result
# For pair and lab: the link appears, ping crosses it, DEL removes both ends.
# A's netns outlives every DEL here, so "in1 is gone" is ratchet's doing.
. "$(dirname "$0")/lib.sh"
e2e_init cnitool

need_pkgs iproute2 iputils-ping jq util-linux
build_go_tools
make_cni_bin ptp host-local
host_netns
A_NS=ratchet-e2e-cnitool-a-$$ B_NS=ratchet-e2e-cnitool-b-$$
new_netns "$B_NS"
new_netns "$A_NS"
A=/var/run/netns/$A_NS B=/var/run/netns/$B_NS # cnitool wants a path, not a name

NETCONF=$W/net.d
mkdir -p "$NETCONF"
conflist ratchet-e2e-solo "$(ratchet_conf)" >"$NETCONF/10-solo.conflist"
conflist ratchet-e2e-pair "$(ratchet_conf "$(link_to "$B")")" >"$NETCONF/20-pair.conflist"
conflist ratchet-e2e-lab "$(ptp_conf)" "$(ratchet_conf "$(link_to "$B")")" >"$NETCONF/30-lab.conflist"

# cnitool finds configs in $NETCONFPATH and plugins in $CNI_PATH. It caches
# results under /var/lib/cni/results (not configurable); DEL removes them.
cnitool() {
  in_host env NETCONFPATH="$NETCONF" CNI_PATH="$CNI_BIN" "$TOOLS/cnitool" "$@" 2>>"$W/logs/cnitool.log"
}
cnitool_or_fail() { cnitool "$@" || fail "cnitool $*: $(grep -v '^ \|^$\|^Usage\|^Flags\|^Global' "$W/logs/cnitool.log" | tail -1)"; }

# DEL is idempotent, so registering it up front is safe: on any failure the
# exit trap undoes whatever ADD managed to do (and clears libcni's cache).
on_exit "cnitool del ratchet-e2e-solo '$B'"
on_exit "cnitool del ratchet-e2e-pair '$A'"
on_exit "cnitool del ratchet-e2e-lab '$A'"

# links_work MODE: in1/in2 exist as configured and carry traffic both ways.
links_work() {
  expect_link "$A" in1 "$A_IP4/24" "$A_IP6/64"
  expect_link "$B" in2 "$B_IP4/24" "$B_IP6/64"
  ok "$1: in1 is in A and in2 is in B: up, addressed, marked 'alias ratchet:'"
  ping_from "$A" "$B_IP4" || fail "$1: A cannot ping B ($B_IP4) over the ratchet link"
  ping_from "$A" "$B_IP6" || fail "$1: A cannot ping B ($B_IP6) over the ratchet link"
  ping_from "$B" "$A_IP4" || fail "$1: B cannot ping A ($A_IP4) over the ratchet link"
  ok "$1: traffic flows A <-> B over the ratchet veth (IPv4 both ways, IPv6)"
}

# del_cleans MODE NETWORK: DEL, then nothing of ratchet's anywhere.
del_cleans() {
  local t
  t=$(ts)
  cnitool_or_fail del "$2" "$A"
  elapsed "cnitool del $2" "$t"
  expect_no_link "$A" in1
  expect_no_link "$B" in2
  expect_no_ratchet "$A" "A"
  expect_no_ratchet "$B" "B"
  expect_no_ratchet "$HOST_NETNS" "the host netns"
  ok "$1: after DEL in1 is gone from A (netns still alive), in2 from B; no 'alias ratchet:' in A, B or host"
}

# --- B: ratchet as the only plugin, with no links
res=$(cnitool_or_fail add ratchet-e2e-solo "$B")
jq -e '.cniVersion == "1.0.0" and ((.interfaces // []) | length) == 0 and ((.ips // []) | length) == 0' <<<"$res" >/dev/null ||
  fail "ADD with no links should return an empty result, got: $res"
expect_no_ratchet "$B" "B"
ok "no links: ADD returns an empty 1.0.0 result and creates nothing"

# --- first-plugin mode: ratchet alone makes the link
t=$(ts)
res=$(cnitool_or_fail add ratchet-e2e-pair "$A")
elapsed "cnitool add pair (ratchet)" "$t"
jq -e --arg a4 "$A_IP4/24" --arg a6 "$A_IP6/64" --arg A "$A" '
    [.interfaces[] | {name, sandbox}] == [{name: "in1", sandbox: $A}] and
    [.ips[] | {interface, address}] == [{interface: 0, address: $a4}, {interface: 0, address: $a6}]' \
  <<<"$res" >/dev/null || fail "first-plugin result should be in1 and its IPs, got: $(jq -c . <<<"$res")"
ok "first-plugin mode: the result is in1 (sandbox A) with its two IPs"
links_work "first-plugin mode"
cnitool_or_fail check ratchet-e2e-pair "$A"
ok "first-plugin mode: CHECK passes on the live link"
del_cleans "first-plugin mode" ratchet-e2e-pair
cnitool_or_fail del ratchet-e2e-pair "$A"
ok "first-plugin mode: a second DEL succeeds (DEL is idempotent)"

# --- chained mode: ptp makes eth0, ratchet appends the link.
# (No CHECK here: the reference plugins' CHECK wants every IP of the result
# on CNI_IFNAME, so ptp's own CHECK rejects in1's addresses.)
t=$(ts)
res=$(cnitool_or_fail add ratchet-e2e-lab "$A")
elapsed "cnitool add lab (ptp + ratchet)" "$t"
# ptp reports its host-side veth and eth0; ratchet keeps them and appends
# in1 (sandbox A) and in1's addresses.
jq -e --arg a4 "$A_IP4/24" --arg a6 "$A_IP6/64" --arg A "$A" '
    (.interfaces | map(.name)) as $names |
    ($names | index("eth0")) as $eth0 | ($names | index("in1")) as $in1 |
    $eth0 != null and $in1 == ($names | length) - 1 and .interfaces[$in1].sandbox == $A and
    ([.ips[] | select(.interface == $eth0) | .address | startswith("203.0.113.")] | any) and
    ([.ips[] | select(.interface == $in1) | .address] == [$a4, $a6])' <<<"$res" >/dev/null ||
  fail "chained result should keep ptp's interfaces and IP and append in1 with its IPs, got: $(jq -c '{interfaces, ips}' <<<"$res")"
ok "chained after ptp: the result keeps ptp's eth0 + IP and appends in1 with its IPs"
links_work "chained mode"
gw=$(jq -r '(.interfaces | map(.name) | index("eth0")) as $e | .ips[] | select(.interface == $e) | .gateway' <<<"$res")
ping_from "$A" "$gw" || fail "A cannot reach ptp's gateway $gw any more"
ok "chained mode: ptp's eth0 still reaches its gateway $gw (ratchet left CNI_IFNAME alone)"
del_cleans "chained mode" ratchet-e2e-lab

cnitool_or_fail del ratchet-e2e-solo "$B"
expect_real_host_untouched
