#!/usr/bin/env bash
# ctr.sh -- ratchet driven by containerd's `ctr run --cni`.
#
# With --cni, the ctr process itself (not the containerd daemon) runs the CNI
# plugins, from the hard-coded /etc/cni/net.d and /opt/cni/bin. So every ctr
# here runs in a private mount namespace where those two paths are our own
# directories, and -- like containerd -- in the throwaway host netns.
#
# ctr calls DEL only for `ctr run --rm` in the foreground (not for -d), so
# each container is a foreground `ctr run --rm` put in the background of
# this script; killing the container's task makes that ctr run DEL and exit.
#   B: ratchet with no links            (started first; its netns is /proc/PID/ns/net)
#   A: ratchet with in1 (A) <-> in2 (B) (peer.netns = B's /proc/PID/ns/net)
. "$(dirname "$0")/lib.sh"
e2e_init ctr

need_pkgs containerd runc busybox-static iproute2 iputils-ping jq util-linux
make_cni_bin
host_netns
containerd_start
busybox_image
import_image "$BUSYBOX_TAR"

# ctr_cni CONF_DIR ARGS...: ctr in the host netns, with CONF_DIR as
# /etc/cni/net.d and $CNI_BIN as /opt/cni/bin. Overlays (upper dirs under $W)
# give us those mount points without creating anything in the real /etc or
# /opt; the mounts die with the private mount namespace.
ctr_cni() {
  local conf=$1 o
  shift
  o=$(mktemp -d "$W/ovl.XXXXXX")
  mkdir -p "$o/etc-up/cni/net.d" "$o/etc-work" "$o/opt-up/cni/bin" "$o/opt-work"
  # shellcheck disable=SC2016 # the inner bash expands those
  nsenter --net="$HOST_NETNS" unshare --mount --propagation private bash -ec '
    o=$1 conf=$2 bin=$3 sock=$4; shift 4
    mount -t overlay overlay -o "lowerdir=/etc,upperdir=$o/etc-up,workdir=$o/etc-work" /etc
    mount -t overlay overlay -o "lowerdir=/opt,upperdir=$o/opt-up,workdir=$o/opt-work" /opt
    mount --bind "$conf" /etc/cni/net.d
    mount --bind "$bin" /opt/cni/bin
    exec ctr --address "$sock" "$@"' _ "$o" "$conf" "$CNI_BIN" "$SOCK" "$@"
}
ctr_() { ctr --address "$SOCK" "$@"; } # plain ctr: no CNI involved

# start_container NAME CONF_DIR: `ctr run --rm --cni` in the background;
# sets CTR_PID[NAME] (the ctr process) and TASK_PID[NAME] (the container's
# init, whose netns is the container's).
declare -A CTR_PID TASK_PID
start_container() {
  local name=$1 conf=$2 i st pid
  ctr_cni "$conf" run --rm --cni localhost/busybox:local "$name" sleep 600 \
    </dev/null >"$W/logs/ctr-run-$name.log" 2>&1 &
  CTR_PID[$name]=$!
  # On failure: kill the task; the foreground ctr then runs DEL and removes
  # the container itself.
  on_exit "stop_container $name"
  # ctr runs ADD between creating and starting the task: RUNNING means the
  # network is set up.
  for i in $(seq 1 150); do
    read -r st pid < <(ctr_ task ls 2>/dev/null | awk -v n="$name" '$1 == n { print $3, $2 }') || true
    if [ "${st:-}" = RUNNING ]; then
      TASK_PID[$name]=$pid
      return 0
    fi
    kill -0 "${CTR_PID[$name]}" 2>/dev/null || fail "ctr run $name exited: $(tail -3 "$W/logs/ctr-run-$name.log")"
    sleep 0.1
  done
  fail "container $name not running after 15 s"
}

# stop_container NAME: SIGKILL the task (busybox as PID 1 ignores SIGTERM)
# and wait for the foreground ctr to finish: DEL, then container removal.
stop_container() {
  local name=$1 pid=${CTR_PID[$1]:-} i
  [ -n "$pid" ] || return 0
  ctr_ task kill -s SIGKILL "$name" >/dev/null 2>&1 || true
  for i in $(seq 1 150); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill_pid "$pid" # only if it is stuck
  wait "$pid" 2>/dev/null || true
  unset "CTR_PID[$name]"
}

# in_container NAME CMD...: run CMD inside a running container (busybox).
in_container() { ctr_ task exec --exec-id "e2e-$RANDOM$RANDOM" "$1" "${@:2}"; }

mkdir -p "$W/net-b" "$W/net-a"
conflist ratchet-e2e-b "$(ratchet_conf)" >"$W/net-b/10-ratchet.conflist"

# --- B first, with no links: ratchet returns an empty result; ctr is happy.
start_container ratchet-b "$W/net-b"
B=/proc/${TASK_PID[ratchet-b]}/ns/net
expect_no_ratchet "$B" "B"
ok "B runs with ratchet and no links (empty result accepted by ctr)"

# --- A, linked to B's netns
conflist ratchet-e2e-a "$(ratchet_conf "$(link_to "$B")")" >"$W/net-a/10-ratchet.conflist"
t=$(ts)
start_container ratchet-a "$W/net-a"
elapsed "ctr run --rm --cni (A, until RUNNING)" "$t"
A=/proc/${TASK_PID[ratchet-a]}/ns/net
expect_link "$A" in1 "$A_IP4/24" "$A_IP6/64"
expect_link "$B" in2 "$B_IP4/24" "$B_IP6/64"
in_container ratchet-a ip -o addr show dev in1 | grep -qF "$A_IP4/24" || fail "busybox in A does not see in1 with $A_IP4"
ok "in1 is in container A, in2 in container B: up, addressed, marked 'alias ratchet:'"

traffic_flows "in_container ratchet-a" "in_container ratchet-b" container
ok "traffic flows between the containers over the ratchet veth (busybox ping, IPv4 both ways, IPv6)"

# --- stop A: ctr runs DEL after the task is gone, with CNI_NETNS="" (and
# the cached prevResult). The netns ratchet recorded at ADD, /proc/PID/ns/net,
# no longer resolves by then, so ratchet's DEL finds nothing to remove
# ("removed=0" in its log): here it is the kernel that deletes in1 together
# with A's netns, and with it the peer end in2. Unlike cri.sh and podman.sh
# we therefore cannot hold A's netns open to inspect it after DEL: in1 and
# in2 would (and do) stay.
t=$(ts)
stop_container ratchet-a
elapsed "stop A (kill, DEL, container removal)" "$t"
grep -q 'msg="DEL done".*container=default-ratchet-a' "$W/logs/ratchet.log" || fail "ratchet saw no DEL for A"
ok "ctr ran ratchet's DEL when A stopped, and it succeeded"
# Netns teardown runs in a kernel worker, after the last process has gone:
# hence the retry.
retry 20 bash -c "! nsenter --net='$B' ip link show dev in2" || fail "in2 still in B after A stopped"
expect_no_ratchet "$B" "B"
expect_no_ratchet "$HOST_NETNS" "the host netns"
ok "after A stopped: in2 gone from B; no 'alias ratchet:' in B or the host netns"

stop_container ratchet-b
grep -q 'msg="DEL done".*container=default-ratchet-b' "$W/logs/ratchet.log" || fail "ratchet saw no DEL for B"
[ -z "$(ctr_ containers ls -q)" ] || fail "containers left: $(ctr_ containers ls -q | tr '\n' ' ')"
ok "B stopped: DEL ran, no container left"
expect_real_host_untouched
