#!/usr/bin/env bash
# cri-podlinks.sh -- pod-to-pod links declared by pod annotations, on the
# kubelet path: containerd's CRI plugin driven by crictl.
#
# One network config for every pod, as on a real node: ptp + host-local (the
# cluster network, eth0), then ratchet chained with the capability
# io.kubernetes.cri.pod-annotations, its own store, and no static links.
# Each pod declares its links in the annotation ratchet.cni.dev/links; the
# three pods of namespace "lab" form a line:
#
#   r1 e1 192.0.2.65/30 <-> 192.0.2.66/30 w1 r2 e1 192.0.2.69/30 <-> 192.0.2.70/30 w1 r3
#
# They are created in reverse order (r3, r2, r1): each pod's interfaces
# must exist as soon as its RunPodSandbox returns, whoever came first. Then
# r2 is restarted the Kubernetes way (StopPodSandbox + RemovePodSandbox,
# then a new sandbox for a new pod r2): its neighbours keep their interfaces
# (same ifindex) with carrier down meanwhile, and traffic flows again after.
# r1's e1 carries an IPv6 address too, in this IPv4-only cluster: no
# annotation chooses the pod IP, so crictl inspectp shows ptp's IPv4 address
# as r1's only pod IP.
# At the end nothing of ratchet's is left, and we remove the parking netns
# (ratchet-park-<8 hex>, which ratchet makes and never deletes).
. "$(dirname "$0")/lib.sh"
e2e_init cri-podlinks

need_pkgs containerd runc busybox-static iproute2 iputils-ping jq util-linux
[ -x "$BIN/ratchetctl" ] || fail "no ratchetctl binary in BIN=$BIN (run: make build)"
build_go_tools
build_crictl
make_cni_bin ptp host-local loopback # CRI always runs loopback for lo
host_netns

# ratchet's parking netns: one per store directory, named after it. The
# plugin runs in containerd's mount namespace (ours: containerd is only in
# another netns), so its bind mount in /var/run/netns is visible here.
# Its name derives from our own store dir, so one that exists already was
# left by a killed run of this script: remove it. Registered before
# containerd starts, its removal runs after every pod is gone.
STORE=$W/store
PARK=$(park_netns "$STORE")
PARK_PATH=/var/run/netns/$PARK
PARK_MNT=$(realpath -m "$PARK_PATH") # as /proc/self/mountinfo spells it (/var/run -> /run)
if [ -e "$PARK_PATH" ]; then
  echo "removing $PARK, left by an earlier run" >&2
  ip netns del "$PARK"
fi
on_exit "ip netns del '$PARK'"

containerd_start
busybox_image
pause_image
import_image "$PAUSE_TAR" k8s.io # CRI's images live in containerd namespace k8s.io
import_image "$BUSYBOX_TAR" k8s.io
crictl_setup # crictl talks to our private containerd, from the host netns

# --- the network config: ptp, then ratchet with its own store, no static
# links, and the pod-annotations capability. Wait until containerd has it.
rc=$(ratchet_conf '[]' | jq '. + {capabilities: {"io.kubernetes.cri.pod-annotations": true}}')
[ "$(jq -r .store.dir <<<"$rc")" = "$STORE" ] || fail "ratchet_conf's store dir is not $STORE"
conflist ratchet-e2e "$(ptp_conf)" "$rc" | write_atomically "$W/cni-conf/10-ratchet-e2e.conflist"
loaded() {
  crictl info | jq -e --arg store "$STORE" '
      ([.status.conditions[] | select(.type == "NetworkReady") | .status] == [true]) and
      ([.cniconfig.Networks[].Config | select(.Name == "ratchet-e2e") | .Source | fromjson |
        .plugins[1] | .store.dir == $store and .capabilities["io.kubernetes.cri.pod-annotations"]] == [true])'
}
retry 20 loaded || fail "containerd did not load the network config within 10 s"

# --- pods. Each declares its links, as a Kubernetes pod would.
declare -A LINKS POD CTR NETNS
LINKS[r1]='[{"name":"e1","ips":["192.0.2.65/30","2001:db8:65::1/64"],"peer":{"pod":"r2","name":"w1"}}]'
LINKS[r2]='[{"name":"w1","ips":["192.0.2.66/30"],"peer":{"pod":"r1","name":"e1"}},
            {"name":"e1","ips":["192.0.2.69/30"],"peer":{"pod":"r3","name":"w1"}}]'
LINKS[r3]='[{"name":"w1","ips":["192.0.2.70/30"],"peer":{"pod":"r2","name":"e1"}}]'

# runp NAME UID [ATTEMPT]: RunPodSandbox for pod NAME of namespace lab with
# its links annotation; sets POD[NAME] and NETNS[NAME] (the sandbox netns path).
runp() {
  local t
  jq -n --arg name "$1" --arg uid "$2" --argjson attempt "${3:-0}" --arg logs "$W/podlogs/$1-$2-${3:-0}" --arg links "${LINKS[$1]}" '{
    metadata: {name: $name, namespace: "lab", uid: $uid, attempt: $attempt},
    hostname: $name, log_directory: $logs,
    annotations: {"ratchet.cni.dev/links": ($links | fromjson | tojson)}, linux: {}}' >"$W/$1.json"
  t=$(ts)
  POD[$1]=$(crictl_or_fail runp "$W/$1.json")
  elapsed "crictl runp $1 ($2, attempt ${3:-0})" "$t"
  NETNS[$1]=$(sandbox_netns "${POD[$1]}")
  [ -e "${NETNS[$1]}" ] || fail "pod $1: no sandbox netns (got '${NETNS[$1]}')"
}
# start_box NAME: a busybox container in pod NAME, to ping from; sets CTR[NAME].
start_box() {
  jq -n '{metadata: {name: "box"}, image: {image: "localhost/busybox:local"},
          command: ["/bin/sleep", "600"], log_path: "box.log", linux: {}}' >"$W/$1-box.json"
  CTR[$1]=$(crictl_or_fail create "${POD[$1]}" "$W/$1-box.json" "$W/$1.json")
  crictl_or_fail start "${CTR[$1]}" >/dev/null
}
in_pod() { crictl exec "${CTR[$1]}" "${@:2}"; }
# rm_pod NAME: StopPodSandbox (DEL) + RemovePodSandbox (a second DEL).
rm_pod() {
  local t
  t=$(ts)
  crictl_or_fail stopp "${POD[$1]}" >/dev/null
  crictl_or_fail rmp "${POD[$1]}" >/dev/null
  elapsed "crictl stopp + rmp $1" "$t"
}

# Link facts, read with the host's iproute2 inside a netns.
flags() { nsenter --net="$1" ip -o link show dev "$2" | grep -o '<[^>]*>'; }
ifindex() { nsenter --net="$1" ip -o link show dev "$2" | cut -d: -f1; }
mac() { nsenter --net="$1" ip -o link show dev "$2" | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2; }
has_carrier() { flags "$1" "$2" | grep -q LOWER_UP; }
no_carrier() { flags "$1" "$2" | grep -q NO-CARRIER && ! flags "$1" "$2" | grep -q LOWER_UP; }
# expect_carrier POD IFNAME yes|no: the pod's interface has (no) carrier.
# Carrier follows the parked end's state; a few tries let it settle.
expect_carrier() {
  local nsp=${NETNS[$1]} check=has_carrier
  [ "$3" = yes ] || check=no_carrier
  retry 10 "$check" "$nsp" "$2" || fail "$1's $2 should have carrier=$3: $(flags "$nsp" "$2")"
}

# ratchetctl links: the links' states, read from the store and the parking netns.
ctl_links() { "$BIN/ratchetctl" links --store "$STORE"; }
# link_state END END: the state ratchetctl shows for the link between two
# ends (POD:IFNAME, in either order), or nothing.
link_state() {
  ctl_links | awk -v a="$1" -v b="$2" '
    table && (($2 == a && $3 == b) || ($2 == b && $3 == a)) { print $1 }
    $1 == "STATE" { table = 1 }'
}
# expect_states R1R2 R2R3: the states of the two links of the line.
expect_states() {
  local s12 s23
  s12=$(link_state lab/r1:e1 lab/r2:w1)
  s23=$(link_state lab/r2:e1 lab/r3:w1)
  [ "$s12 $s23" = "$1 $2" ] ||
    fail "ratchetctl links: want r1:e1-r2:w1 '$1' and r2:e1-r3:w1 '$2', got '$s12' and '$s23': $(ctl_links | tr '\n' '|')"
}
# ping_line [WHEN]: busybox ping across both links, both ways.
ping_line() {
  local from to
  while read -r from to; do
    retry 10 in_pod "$from" ping -c 1 -W 1 "$to" || fail "${1:-}pod $from cannot ping $to"
  done <<<"r1 192.0.2.66
r2 192.0.2.65
r3 192.0.2.69
r2 192.0.2.70"
}
park_links() { nsenter --net="$PARK_PATH" ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | sort | tr '\n' ' '; }

# --- r3 first: its peer r2 does not exist yet.
runp r3 uid-r3
expect_link "${NETNS[r3]}" w1 192.0.2.70/30
expect_carrier r3 w1 no
expect_states "" pending
ok "r3 (first): w1 192.0.2.70/30 exists as soon as runp returns: up, marked, no carrier; ratchetctl: r2:e1-r3:w1 pending"

[ -e "$PARK_PATH" ] || fail "no parking netns $PARK_PATH after r3's ADD; /var/run/netns has: $(find /var/run/netns/ -mindepth 1 -printf '%f ')"
fstype=$(awk -v p="$PARK_MNT" '$5 == p { for (i = 7; $i != "-"; i++); print $(i + 1) }' /proc/self/mountinfo)
[ "$fstype" = nsfs ] || fail "$PARK_PATH is not a netns bind mount seen from here (fstype '$fstype')"
# Not `ip netns list | grep -q`: grep -q exits at the first match, and with
# pipefail the SIGPIPE that ip then gets on a long list fails the check.
netns_list=$(ip netns list)
grep -q "^$PARK\b" <<<"$netns_list" || fail "ip netns list does not show $PARK"
in_host test -e "$PARK_PATH" || fail "$PARK_PATH is not visible from the host netns"
[ "$(nsenter --net="$PARK_PATH" ip -o link show | grep -c 'alias ratchet:')" = 1 ] ||
  fail "the parking netns should hold r3's one parked end: $(park_links)"
ok "the parking netns $PARK is visible here and from the host netns (an nsfs bind mount in /var/run/netns, in ip netns list) and holds r3's parked end"
start_box r3

# --- r2: joins r3 at once; its link to r1 waits.
runp r2 uid-r2
expect_link "${NETNS[r2]}" w1 192.0.2.66/30
expect_link "${NETNS[r2]}" e1 192.0.2.69/30
expect_carrier r2 e1 yes
expect_carrier r3 w1 yes
expect_carrier r2 w1 no
expect_states pending up
ok "r2: w1 and e1 exist as soon as runp returns; e1<->r3:w1 has carrier both ends (up), w1 none (r1 pending)"
start_box r2

# --- r1: completes the line.
runp r1 uid-r1
expect_link "${NETNS[r1]}" e1 192.0.2.65/30
expect_carrier r1 e1 yes
expect_carrier r2 w1 yes
expect_states up up
ok "r1: e1 exists as soon as runp returns, with carrier, and so has r2's w1; ratchetctl links: both links up"

# The pod IPs the runtime reports (what the kubelet puts in the pod's
# status, Endpoints and NetworkPolicy follow): ptp's address only.
expect_link "${NETNS[r1]}" e1 2001:db8:65::1/64
podnet=$(crictl inspectp -o json "${POD[r1]}" | jq -c .status.network)
ptp_ip=$(nsenter --net="${NETNS[r1]}" ip -o -4 addr show dev eth0 | awk '{print $4}' | cut -d/ -f1)
case $ptp_ip in "${POD_SUBNET%.*/*}".*) ;; *) fail "r1's eth0 has no address of $POD_SUBNET: '$ptp_ip'" ;; esac
jq -e --arg ip "$ptp_ip" '.ip == $ip and ((.additionalIps // []) | length) == 0' <<<"$podnet" >/dev/null ||
  fail "r1's pod IPs should be ptp's $ptp_ip alone, crictl inspectp shows $podnet"
ok "no annotation chooses the pod IP: crictl inspectp shows r1's pod IP as ptp's $ptp_ip alone, though its annotation link e1 has 2001:db8:65::1/64"
start_box r1

ping_line
ok "traffic flows across both links, both ways (crictl exec ping r1->r2 .66, r2->r1 .65, r3->r2 .69, r2->r3 .70)"

# --- restart r2 the Kubernetes way: StopPodSandbox + RemovePodSandbox, then
# a new sandbox (a new pod r2, new UID). We hold the old netns open, so that
# what we find there afterwards is what DEL left.
idx_r1=$(ifindex "${NETNS[r1]}" e1)
idx_r3=$(ifindex "${NETNS[r3]}" w1)
mac_w1=$(mac "${NETNS[r2]}" w1)
mac_e1=$(mac "${NETNS[r2]}" e1)
hold_netns "${NETNS[r2]}" r2-old
rm_pod r2
expect_no_link "$W/held-r2-old" w1
expect_no_link "$W/held-r2-old" e1
expect_no_ratchet "$W/held-r2-old" "r2's old sandbox"
ok "r2 stopped and removed (stopp + rmp): w1 and e1 gone from its netns (held alive), nothing of ratchet's left there"

expect_link "${NETNS[r1]}" e1 192.0.2.65/30
expect_link "${NETNS[r3]}" w1 192.0.2.70/30
[ "$(ifindex "${NETNS[r1]}" e1)" = "$idx_r1" ] || fail "r1's e1 changed ifindex: $idx_r1 -> $(ifindex "${NETNS[r1]}" e1)"
[ "$(ifindex "${NETNS[r3]}" w1)" = "$idx_r3" ] || fail "r3's w1 changed ifindex: $idx_r3 -> $(ifindex "${NETNS[r3]}" w1)"
expect_carrier r1 e1 no
expect_carrier r3 w1 no
expect_states parked parked
ok "while r2 is gone: r1's e1 (ifindex $idx_r1) and r3's w1 (ifindex $idx_r3) stay, same ifindex and addresses, with no carrier; ratchetctl links: both parked"

runp r2 uid-r2-new
expect_link "${NETNS[r2]}" w1 192.0.2.66/30
expect_link "${NETNS[r2]}" e1 192.0.2.69/30
[ "$(mac "${NETNS[r2]}" w1) $(mac "${NETNS[r2]}" e1)" = "$mac_w1 $mac_e1" ] ||
  fail "the new r2's MACs differ: w1 $mac_w1 -> $(mac "${NETNS[r2]}" w1), e1 $mac_e1 -> $(mac "${NETNS[r2]}" e1)"
expect_carrier r1 e1 yes
expect_carrier r3 w1 yes
expect_carrier r2 w1 yes
expect_carrier r2 e1 yes
expect_states up up
ok "the new r2 (new sandbox): w1 and e1 exist as soon as runp returns, same MACs as before; every end has carrier; both links up"
start_box r2
ping_line "after r2's restart, "
[ "$(ifindex "${NETNS[r1]}" e1) $(ifindex "${NETNS[r3]}" w1)" = "$idx_r1 $idx_r3" ] ||
  fail "a neighbour's ifindex changed across r2's restart: r1:e1 $idx_r1 -> $(ifindex "${NETNS[r1]}" e1), r3:w1 $idx_r3 -> $(ifindex "${NETNS[r3]}" w1)"
ok "after r2's restart traffic flows again across both links, both ways; r1's e1 and r3's w1 kept their ifindex"

# --- kubelet's own sandbox restart (when a sandbox dies, say): it stops the
# old sandbox, runs a new one for the same pod (same UID, attempt 1), and
# removes the old one only later -- a second DEL for the old sandbox, with
# no netns, after the new one holds r2's links. That late DEL must leave
# them alone.
old=${POD[r2]}
crictl_or_fail stopp "$old" >/dev/null
expect_carrier r1 e1 no
expect_carrier r3 w1 no
runp r2 uid-r2-new 1
t=$(ts)
crictl_or_fail rmp "$old" >/dev/null
elapsed "crictl rmp r2's old sandbox" "$t"
expect_link "${NETNS[r2]}" w1 192.0.2.66/30
expect_link "${NETNS[r2]}" e1 192.0.2.69/30
expect_carrier r1 e1 yes
expect_carrier r3 w1 yes
expect_carrier r2 w1 yes
expect_carrier r2 e1 yes
expect_states up up
start_box r2
ping_line "after kubelet's sandbox restart of r2, "
ok "kubelet's sandbox restart of r2 (stopp, runp attempt 1, then rmp of the old sandbox): the old one's late DEL left the new r2's links up; traffic flows"

# --- tear everything down. Held netns let us look inside afterwards.
for p in r1 r2 r3; do hold_netns "${NETNS[$p]}" "$p"; done
for p in r1 r2 r3; do rm_pod "$p"; done
[ -z "$(crictl pods -q)" ] || fail "pods left: $(crictl pods -q | tr '\n' ' ')"
for p in r1 r2 r3; do
  if [ -e "${NETNS[$p]}" ]; then fail "containerd left $p's sandbox netns handle ${NETNS[$p]}"; fi
  expect_no_ratchet "$W/held-$p" "pod $p's netns"
done
expect_no_ratchet "$HOST_NETNS" "the host netns"
expect_no_ratchet /proc/self/ns/net "the real host netns"
[ "$(park_links)" = "lo " ] || fail "the parking netns should hold only lo, holds: $(park_links)"
ok "all pods stopped and removed: no 'alias ratchet:' netdev in any pod's netns (held), the host netns or the real host; the parking netns holds only lo"

out=$(ctl_links)
rows=$(grep -v -e '^POD' -e '^STATE' -e '^$' <<<"$out" || true)
[ -z "$rows" ] || fail "ratchetctl links still lists: $(tr '\n' '|' <<<"$rows")"
ok "ratchetctl links lists no pod and no link"

# --- first-plugin mode (ratchet alone, no ptp): a pod whose annotation link
# takes CNI_IFNAME would choose its own pod IP. RunPodSandbox must fail with
# ratchet's code 7 naming the annotation, and leave no sandbox behind.
conflist ratchet-e2e "$rc" | write_atomically "$W/cni-conf/10-ratchet-e2e.conflist"
loaded_alone() {
  crictl info | jq -e --arg store "$STORE" '
      [.cniconfig.Networks[].Config | select(.Name == "ratchet-e2e") | .Source | fromjson |
        (.plugins | length) == 1 and .plugins[0].store.dir == $store] == [true]'
}
retry 20 loaded_alone || fail "containerd did not load the first-plugin network config within 10 s"
LINKS[x1]='[{"name":"eth0","ips":["2001:db8:66::1/64"],"peer":{"pod":"r1","name":"e9"}}]'
jq -n --arg logs "$W/podlogs/x1" --arg links "${LINKS[x1]}" '{
  metadata: {name: "x1", namespace: "lab", uid: "uid-x1", attempt: 0},
  hostname: "x1", log_directory: $logs,
  annotations: {"ratchet.cni.dev/links": ($links | fromjson | tojson)}, linux: {}}' >"$W/x1.json"
seen=$(wc -l <"$W/logs/crictl.log") # crictl's stderr goes there
if x1=$(crictl runp "$W/x1.json"); then
  fail "RunPodSandbox of a pod whose annotation link is eth0 succeeded; pod IPs: $(crictl inspectp -o json "$x1" | jq -c .status.network)"
fi
tail -n +$((seen + 1)) "$W/logs/crictl.log" >"$W/x1.err"
grep -q 'ratchet.cni.dev/links' "$W/x1.err" && grep -q 'eth0' "$W/x1.err" && grep -q 'is CNI_IFNAME' "$W/x1.err" ||
  fail "RunPodSandbox of x1 failed, but not with ratchet's code 7 naming the annotation and eth0: $(tr '\n' ' ' <"$W/x1.err")"
[ -z "$(crictl pods -q)" ] || fail "the refused pod left sandboxes: $(crictl pods -q | tr '\n' ' ')"
[ "$(park_links)" = "lo " ] || fail "the refused pod changed the parking netns: $(park_links)"
ok "first-plugin mode: a pod whose annotation link takes eth0 (CNI_IFNAME) is refused by RunPodSandbox (code 7 naming ratchet.cni.dev/links and eth0); no sandbox, nothing parked"

ip netns del "$PARK" || fail "ip netns del $PARK"
if [ -e "$PARK_PATH" ] || grep -q " $PARK_MNT " /proc/self/mountinfo; then fail "$PARK_PATH still there after ip netns del"; fi
ok "the parking netns $PARK removed (ratchet never deletes it)"
expect_real_host_untouched
