#!/usr/bin/env bash
# docker.sh -- ratchet as the network of a real Docker engine, the seed's
# way: the CNI project's own scripts/docker-run.sh and exec-plugins.sh
# (carried unmodified in test/e2e/cni-scripts), against Debian's dockerd
# 20.10 run in a throwaway host netns; then `ratchetctl connect -d` against
# the same engine.
#
#   docker-run.sh, static link   a container's in1 <-> in2 in a named netns:
#                                pings from the container (IPv4, IPv6) and
#                                from the netns; after the script, DEL removed
#                                in1 (its netns held open to look) and in2
#   docker-run.sh, pod link      containers pa and pb, each declaring the
#                                other in ratchet.cni.dev/links: each pings
#                                the other; after both, nothing of ratchet's
#                                is left in them or in the parking netns
#   ratchetctl connect -d        two `docker run -d` containers found by
#                                name through the Engine API; docker exec
#                                pings both ways; disconnect -d; errors
#
# docker-run.sh passes its arguments to `docker run` unquoted, so the
# command it runs is a script inside the image (/e2e/hold.sh): it checks the
# container's interface, pings the peers, then signals "ready" in a shared
# directory and waits to be released, so that the test can look from
# outside while the container lives. exec-plugins.sh sends each config file
# to the plugin as it is and passes its environment through: the pod's
# identity goes in CNI_ARGS, its annotations in a runtimeConfig written in
# the file (what a runtime with the pod-annotations capability would add).
. "$(dirname "$0")/lib.sh"
e2e_init docker

need_pkgs docker.io busybox-static iproute2 iputils-ping jq util-linux
[ -x "$BIN/ratchetctl" ] || fail "no ratchetctl binary in BIN=$BIN (run: make build)"
SCRIPTS=$E2E_DIR/cni-scripts
[ "$(cd "$SCRIPTS" && git hash-object docker-run.sh exec-plugins.sh 2>/dev/null | tr '\n' ' ')" = \
  "b6cd425030d95609ab135065adc7abba34379828 60f20e3b4433d6b8a23c84162dc7da7dabb6491c " ] ||
  fail "test/e2e/cni-scripts/docker-run.sh or exec-plugins.sh differ from the CNI project's (see its README.md)"
make_cni_bin
host_netns

# ratchet's parking netns of our store (pod links): removed on exit; one
# left by a killed earlier run of this script is removed now. Registered
# before dockerd starts, so that it goes after every container.
STORE=$W/store
PARK=$(park_netns "$STORE")
PARK_PATH=/var/run/netns/$PARK
if [ -e "$PARK_PATH" ]; then
  echo "removing $PARK, left by an earlier run" >&2
  ip netns del "$PARK"
fi
on_exit "ip netns del '$PARK'"

dockerd_start
cat >"$W/hold.sh" <<'EOF'
#!/bin/sh
# hold.sh DIR IFNAME CIDR PEER...: IFNAME has CIDR; ping each PEER (retried
# while the other end comes up); then touch DIR/ready and wait for
# DIR/release (at most 2 minutes).
dir=$1 ifname=$2 cidr=$3
shift 3
ip -o addr show dev "$ifname" | grep -qF " $cidr " || { echo "hold: $ifname lacks $cidr: $(ip -o addr)"; exit 1; }
echo "hold: $ifname has $cidr"
for peer in "$@"; do
  n=0
  until ping -c 1 -W 1 "$peer" >/dev/null 2>&1; do
    n=$((n + 1))
    [ "$n" -lt 40 ] || { echo "hold: cannot ping $peer"; exit 1; }
    sleep 0.5
  done
  echo "hold: pinged $peer"
done
touch "$dir/ready"
n=0
until [ -e "$dir/release" ]; do
  n=$((n + 1))
  [ "$n" -lt 1200 ] || { echo "hold: never released"; exit 1; }
  sleep 0.1
done
echo "hold: released"
EOF
docker_busybox_image "$W/hold.sh"

# netconf DIR CONF_JSON: DIR/10-ratchet.conf, the one config exec-plugins.sh
# reads there (only *.conf files; name and cniVersion from the file).
netconf() {
  mkdir -p "$1"
  jq '{cniVersion: "1.0.0", name: "ratchet-e2e"} + .' <<<"$2" >"$1/10-ratchet.conf"
}

# docker_run NAME NETCONFPATH CNI_ARGS IFNAME CIDR PEER...: docker-run.sh,
# from its own directory, in the host netns, in the background, running
# /e2e/hold.sh with $W/share-NAME as its shared directory. Sets RUN[NAME]
# (the script's PID); its output goes to $W/logs/docker-run-NAME.log.
declare -A RUN HELD
docker_run() {
  local name=$1 netconfpath=$2 cniargs=$3
  shift 3
  mkdir -p "$W/share-$name"
  (cd "$SCRIPTS" && exec nsenter --net="$HOST_NETNS" env PATH="$DK/bin:$PATH" NETCONFPATH="$netconfpath" \
    CNI_PATH="$CNI_BIN" CNI_ARGS="$cniargs" ./docker-run.sh --rm -v "$W/share-$name:/share" \
    busybox:latest /e2e/hold.sh /share "$@") >"$W/logs/docker-run-$name.log" 2>&1 &
  RUN[$name]=$!
  on_exit "stop_run $name"
}
# stop_run NAME (on exit, before dockerd stops): release hold.sh and give
# docker-run.sh 10 s to run its DEL and `docker rm -f`; then stop it by PID
# (dockerd_stop removes what it left).
stop_run() {
  local i
  touch "$W/share-$1/release"
  for i in $(seq 1 100); do
    kill -0 "${RUN[$1]}" 2>/dev/null || return 0
    sleep 0.1
  done
  echo "docker-run.sh for $1 still runs: stopping it (pid ${RUN[$1]})"
  kill_pid "${RUN[$1]}"
}
# await_ready NAME: hold.sh in NAME's container has signalled ready.
await_ready() {
  local i
  for i in $(seq 1 300); do
    [ ! -e "$W/share-$1/ready" ] || return 0
    kill -0 "${RUN[$1]}" 2>/dev/null || fail "docker-run.sh for $1 ended early: $(tr '\n' '|' <"$W/logs/docker-run-$1.log")"
    sleep 0.1
  done
  fail "docker-run.sh for $1: not ready after 30 s: $(tr '\n' '|' <"$W/logs/docker-run-$1.log")"
}
# release NAME: let hold.sh end, then wait for docker-run.sh; it must exit 0.
release() {
  local rc=0
  touch "$W/share-$1/release"
  wait "${RUN[$1]}" || rc=$?
  [ "$rc" = 0 ] || fail "docker-run.sh for $1 exited with $rc: $(tr '\n' '|' <"$W/logs/docker-run-$1.log")"
}
# sandbox_of NAME: the netns of the --net=none container docker-run.sh made
# for NAME (the one whose netns the command container, the one with
# $W/share-NAME mounted, joined), held open (hold_netns) so that we can look
# after DEL. Call it in the main shell (not in $(...)): it sets HELD[NAME].
sandbox_of() {
  local id mode="" pid
  for id in $(docker ps -q); do
    if docker inspect -f '{{range .Mounts}}{{.Source}} {{end}}' "$id" | grep -qw -- "$W/share-$1"; then
      mode=$(docker inspect -f '{{.HostConfig.NetworkMode}}' "$id")
    fi
  done
  [[ $mode == container:* ]] || fail "no command container of $1 in a sandbox's netns: $(docker ps --no-trunc | tr '\n' '|')"
  pid=$(docker inspect -f '{{.State.Pid}} {{.HostConfig.NetworkMode}}' "${mode#container:}")
  [ "${pid#* }" = none ] || fail "$1's sandbox ${mode#container:} is not --net=none: $pid"
  hold_netns "/proc/${pid%% *}/ns/net" "$1"
  HELD[$1]=$W/held-$1
}

# ---------------------------------------------------------------- static link
PEER=ratchet-e2e-docker-peer-$$
new_netns "$PEER"
PEER_NETNS=/var/run/netns/$PEER
netconf "$W/net-static" "$(ratchet_conf "$(link_to "$PEER_NETNS")")"
t=$(ts)
docker_run static "$W/net-static" "" in1 "$A_IP4/24" "$B_IP4" "$B_IP6"
await_ready static
elapsed "docker-run.sh: ADD and the container's pings" "$t"
sandbox_of static
expect_link "${HELD[static]}" in1 "$A_IP4/24" "$A_IP6/64"
expect_link "$PEER_NETNS" in2 "$B_IP4/24" "$B_IP6/64"
grep -q "hold: pinged $B_IP4" "$W/logs/docker-run-static.log" && grep -q "hold: pinged $B_IP6" "$W/logs/docker-run-static.log" ||
  fail "the container did not report its pings: $(tr '\n' '|' <"$W/logs/docker-run-static.log")"
ping_from "$PEER_NETNS" "$A_IP4" || fail "the named netns cannot ping the container ($A_IP4)"
ping_from "$PEER_NETNS" "$A_IP6" || fail "the named netns cannot ping the container ($A_IP6)"
ok "docker-run.sh + exec-plugins.sh (unmodified) ran ratchet on a real dockerd: in1 in the container, in2 in netns $PEER; the container pinged $B_IP4 and $B_IP6, the netns pinged back"
t=$(ts)
release static
elapsed "docker-run.sh: the command's end, DEL, docker rm" "$t"
expect_no_link "${HELD[static]}" in1
expect_no_ratchet "${HELD[static]}" "the static container's netns (held)"
expect_no_link "$PEER_NETNS" in2
expect_no_ratchet "$PEER_NETNS" "netns $PEER"
[ -z "$(docker ps -aq)" ] || fail "containers left after docker-run.sh: $(docker ps -a | tr '\n' '|')"
ok "docker-run.sh exited 0; its DEL removed in1 (its netns still alive, held) and in2; both containers removed"

# ---------------------------------------------------------------- pod link
# pa e1 198.51.100.1/30 <-> 198.51.100.2/30 w1 pb, IPv6 too; each pod
# declares the link (consent), pod identity from CNI_ARGS.
declare -A LINKS CIDR6
LINKS[pa]='[{"name":"e1","ips":["198.51.100.1/30","2001:db8:1::1/64"],"peer":{"pod":"pb","name":"w1"}}]'
LINKS[pb]='[{"name":"w1","ips":["198.51.100.2/30","2001:db8:1::2/64"],"peer":{"pod":"pa","name":"e1"}}]'
for p in pa pb; do
  netconf "$W/net-$p" "$(ratchet_conf '[]' | jq --arg links "${LINKS[$p]}" '. + {
      capabilities: {"io.kubernetes.cri.pod-annotations": true},
      runtimeConfig: {"io.kubernetes.cri.pod-annotations": {"ratchet.cni.dev/links": $links}}}')"
done
t=$(ts)
docker_run pa "$W/net-pa" "K8S_POD_NAMESPACE=lab;K8S_POD_NAME=pa" e1 198.51.100.1/30 198.51.100.2 2001:db8:1::2
docker_run pb "$W/net-pb" "K8S_POD_NAMESPACE=lab;K8S_POD_NAME=pb" w1 198.51.100.2/30 198.51.100.1 2001:db8:1::1
await_ready pa
await_ready pb
elapsed "docker-run.sh x2: ADDs and both containers' pings" "$t"
for p in pa pb; do
  grep -q "hold: pinged" "$W/logs/docker-run-$p.log" || fail "$p reported no ping: $(tr '\n' '|' <"$W/logs/docker-run-$p.log")"
done
ok "pod link over docker-run.sh: pa (e1) and pb (w1), each declaring the other in ratchet.cni.dev/links; each pinged the other (IPv4, IPv6) from inside"
sandbox_of pa
sandbox_of pb
expect_link "${HELD[pa]}" e1 198.51.100.1/30 2001:db8:1::1/64
expect_link "${HELD[pb]}" w1 198.51.100.2/30 2001:db8:1::2/64
links=$("$BIN/ratchetctl" links --store "$STORE")
grep -q 'lab/pa' <<<"$links" && grep -q 'lab/pb' <<<"$links" || fail "ratchetctl links does not show lab/pa and lab/pb: $(tr '\n' '|' <<<"$links")"
ok "pa's e1 and pb's w1 are up and addressed; ratchetctl links shows the link lab/pa <-> lab/pb"
release pa
release pb
for p in pa pb; do expect_no_ratchet "${HELD[$p]}" "$p's netns (held)"; done
[ -e "$PARK_PATH" ] || fail "no parking netns $PARK_PATH"
expect_no_ratchet "$PARK_PATH" "the parking netns $PARK"
links=$("$BIN/ratchetctl" links --store "$STORE")
if grep -q 'lab/p[ab]' <<<"$links"; then fail "ratchetctl links still shows the pods: $(tr '\n' '|' <<<"$links")"; fi
[ -z "$(docker ps -aq)" ] || fail "containers left after docker-run.sh: $(docker ps -a | tr '\n' '|')"
ok "both docker-run.sh exited 0; DEL left nothing of ratchet's in either container, the parking netns or the store; containers removed"

# ---------------------------------------------------------------- ratchetctl connect -d
ctl() { in_host "$BIN/ratchetctl" "$@"; } # DOCKER_HOST is ours (dockerd_start)
declare -A PID NETNS
for c in ratchet-e2e-da ratchet-e2e-db; do
  docker_or_fail run -d --name "$c" --net=none busybox:latest sleep 600 >/dev/null
  PID[$c]=$(docker inspect -f '{{.State.Pid}}' "$c")
  NETNS[$c]=/proc/${PID[$c]}/ns/net
done
A=ratchet-e2e-da B=ratchet-e2e-db
out=$(ctl connect -d $A,in1,$A_IP4/24 -d $B,in2,$B_IP4/24 2>&1) || fail "ratchetctl connect -d: $out"
[ "$out" = "connected -d $A,in1 <-> -d $B,in2 (veth)" ] || fail "unexpected connect output: $out"
expect_link "${NETNS[$A]}" in1 "$A_IP4/24"
expect_link "${NETNS[$B]}" in2 "$B_IP4/24"
retry 10 docker exec $A ping -c 1 -W 1 "$B_IP4" || fail "$A cannot ping $B ($B_IP4)"
retry 10 docker exec $B ping -c 1 -W 1 "$A_IP4" || fail "$B cannot ping $A ($A_IP4)"
ok "ratchetctl connect -d against dockerd's Engine API: containers found by name, one veth, docker exec pings both ways"
out=$(ctl disconnect -d $B,in2 2>&1) || fail "ratchetctl disconnect -d: $out"
[ "$out" = "disconnected -d $B,in2" ] || fail "unexpected disconnect output: $out"
expect_no_link "${NETNS[$A]}" in1
expect_no_link "${NETNS[$B]}" in2
rc=0
out=$(ctl connect -d ratchet-e2e-nosuch,in1 -d $B,in2 2>&1) || rc=$?
[ "$rc" = 1 ] && grep -qF 'no such container "ratchet-e2e-nosuch"' <<<"$out" ||
  fail "an unknown container should fail with status 1 and say so; got $rc: $out"
expect_no_link "${NETNS[$B]}" in2
ok "ratchetctl disconnect -d removed both ends; an unknown container fails with exit 1 ($out)"
docker_or_fail rm -f $A $B >/dev/null

# ---------------------------------------------------------------- the end
[ -z "$(docker ps -aq)" ] || fail "containers left: $(docker ps -a | tr '\n' '|')"
t=$(ts)
kill_pid "$DOCKERD_PID"
if kill -0 "$DOCKERD_PID" 2>/dev/null; then fail "dockerd (pid $DOCKERD_PID) still runs"; fi
[ -z "$(pids_mentioning "$DK/")" ] || fail "processes of dockerd left: $(pids_mentioning "$DK/" | tr '\n' ' ')"
elapsed "dockerd stop" "$t"
ok "dockerd (pid $DOCKERD_PID) stopped, with its containerd and shims"
expect_real_host_untouched
