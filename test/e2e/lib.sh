# lib.sh -- shared helpers for ratchet's end-to-end tests with real CNI clients.
#
# Sourced (never executed) by cnitool.sh, ctr.sh, cri.sh, cri-podlinks.sh,
# podman.sh, ratchetctl-docker.sh, docker.sh, multinode.sh and cri-multinode.sh. Each
# of those scripts:
#   1. calls `e2e_init NAME` (a work dir $W under $BASE, a cleanup trap),
#   2. runs its client in a throwaway "host" netns (never in the real one),
#   3. proves facts with `ok "..."` / `fail "..."`,
#   4. leaves nothing behind: every resource it makes is registered with
#      `on_exit` right after it is made, and undone in reverse order on exit.
#
# Environment (all optional):
#   BIN        directory holding the ratchet binary  (default: <repo>/bin)
#   BASE       scratch dir for everything the tests make (default: /tmp/ratchet-e2e);
#              it is removed at the end, so it must be a dedicated directory
#   E2E_CACHE  where built tools are kept between runs (default: <repo>/.cache/e2e)
#   E2E_KEEP=1 keep $BASE (logs, configs) after the run; processes, netns and
#              mounts are still cleaned up
#   E2E_TALLY  set by run.sh: write "passed failed" there instead of printing
#              the closing "e2e: ..." line

# -E: the ERR trap below also fires inside functions and subshells.
set -eEuo pipefail

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$E2E_DIR/../.." && pwd)
BIN=${BIN:-$REPO/bin}
BASE=${BASE:-/tmp/ratchet-e2e}
E2E_CACHE=${E2E_CACHE:-$REPO/.cache/e2e}
export PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# Versions of the tools built from source. cnitool and the reference plugins
# come from this module's go.mod (`tool` lines), so they follow its versions.
CRICTL_VERSION=v1.37.0
CRICTL=$E2E_CACHE/crictl-$CRICTL_VERSION/crictl
TOOLS=$E2E_CACHE/bin                       # cnitool, ptp, host-local, loopback

# Link addresses: documentation ranges only (RFC 5737 / RFC 3849).
A_IP4=192.0.2.1   B_IP4=192.0.2.2
A_IP6=2001:db8::1 B_IP6=2001:db8::2
POD_SUBNET=203.0.113.0/24                  # ptp + host-local "cluster network"

# ---------------------------------------------------------------- reporting

PASSED=0 FAILED=0
CLIENT=${CLIENT:-e2e}
_failed_msg=""
_last_err=""

ts() { echo "${EPOCHREALTIME/./}"; }       # microseconds since the epoch (bash >= 5)
elapsed() {                                # elapsed LABEL START_TS
  local us=$(($(ts) - $2))
  printf 'TIME %s: %s: %d.%03ds\n' "$CLIENT" "$1" $((us / 1000000)) $(((us / 1000) % 1000))
}

# ok FACT: one line per proven fact; the closing line counts them.
ok() {
  PASSED=$((PASSED + 1))
  echo "ok $CLIENT: $*"
}

# fail WHAT: a clear one-line reason, then the logs that explain it, then exit.
# Called in a $(...) subshell, it only ends that subshell; set -e then ends
# the script, and the flag file tells the exit trap the reason is printed.
fail() {
  _failed_msg="$*"
  echo "FAIL: $CLIENT: $*" >&2
  dump_logs >&2
  if [ -d "${W:-}" ]; then echo "$*" >"$W/.failed"; fi
  exit 1
}

# Remember the last failing command, so that a failure that set -e catches
# (and not an explicit `fail`) still gets a FAIL line that says where.
trap '_last_err="line $LINENO: $BASH_COMMAND"' ERR

# dump_logs: the tail of every log of this client (plugin log, runtime logs).
dump_logs() {
  local f
  [ -d "${W:-}/logs" ] || return 0
  for f in "$W"/logs/*; do
    [ -s "$f" ] || continue
    echo "---- last lines of $f"
    tail -n 25 "$f" | cut -c1-400
  done
}

# ---------------------------------------------------------------- cleanup

# on_exit CMD...: register a cleanup step; steps run in reverse order on
# exit (normal end, failure, or Ctrl-C), each one allowed to fail.
_cleanups=()
on_exit() { _cleanups+=("$*"); }

_run_cleanups() {
  local rc=$? i
  set +eE
  trap - ERR
  if [ -z "$_failed_msg" ] && [ -s "${W:-/nonexistent}/.failed" ]; then _failed_msg=$(cat "$W/.failed"); fi
  if [ "$rc" -ne 0 ] && [ -z "$_failed_msg" ]; then
    echo "FAIL: $CLIENT: exited with status $rc at ${_last_err:-unknown command}" >&2
    dump_logs >&2
  fi
  for ((i = ${#_cleanups[@]} - 1; i >= 0; i--)); do
    eval "${_cleanups[i]}" >>"${W:-/tmp}/cleanup.log" 2>&1
  done
  [ "$rc" -eq 0 ] || [ "$FAILED" -gt 0 ] || FAILED=1
  if [ -n "${E2E_TALLY:-}" ]; then
    echo "$PASSED $FAILED" >"$E2E_TALLY"
  else
    echo "e2e: $PASSED passed, $FAILED failed"
  fi
  exit "$rc"
}

# e2e_init NAME: set up $W (this client's work dir) and the exit trap.
# When a client script runs on its own, it owns $BASE and removes it at the
# end; under run.sh, run.sh owns $BASE (E2E_OWNER is set there).
e2e_init() {
  CLIENT=$1
  [ "$(id -u)" = 0 ] || { echo "FAIL: $CLIENT: must run as root (netns, mounts, runtimes)" >&2; exit 1; }
  trap _run_cleanups EXIT
  trap 'exit 130' INT TERM
  if [ -z "${E2E_OWNER:-}" ]; then
    base_claim
    on_exit base_release
  fi
  W=$BASE/$CLIENT
  rm -rf "$W"
  mkdir -p "$W/logs"
  [ -x "$BIN/ratchet" ] || fail "no ratchet binary in BIN=$BIN (run: make build)"
  snapshot_real_host
}

# base_claim: make $BASE ours. A marker file tells our BASE from anything
# else, so that a typo in BASE can never make us delete someone's files. A
# run holds a lock on the marker while it lives: a BASE left by a killed run
# is swept first, one in use by a live run is left alone.
base_claim() {
  local fd
  case $BASE in /*/*) ;; *) fail "BASE=$BASE must be an absolute path at least two levels deep" ;; esac
  if [ -e "$BASE" ]; then
    if [ -e "$BASE/.ratchet-e2e" ]; then
      exec {fd}<"$BASE/.ratchet-e2e"
      flock -n "$fd" || fail "BASE=$BASE is in use by another e2e run"
      exec {fd}<&-
      unmount_under "$BASE"
      rm -rf "$BASE"
    elif [ -n "$(ls -A "$BASE")" ]; then
      fail "BASE=$BASE exists, is not empty and was not made by these tests"
    fi
  fi
  mkdir -p "$BASE"
  touch "$BASE/.ratchet-e2e"
  exec {_base_lock}<"$BASE/.ratchet-e2e" # released when we exit
  flock -n "$_base_lock" || fail "BASE=$BASE is in use by another e2e run"
}

base_release() {
  unmount_under "$BASE"
  if [ "${E2E_KEEP:-0}" = 1 ]; then
    echo "E2E_KEEP=1: kept $BASE" >&2
  else
    rm -rf "$BASE"
  fi
}

# unmount_under DIR: unmount every mount point below DIR, deepest first
# (netns handles we hold, podman/containerd overlays left by a crash).
unmount_under() {
  local m
  awk -v d="$1/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
}

# kill_pid PID: stop one process we started: SIGTERM, then SIGKILL after 10 s.
kill_pid() {
  local p=$1 i
  kill "$p" 2>/dev/null || return 0
  for i in $(seq 1 100); do
    kill -0 "$p" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$p" 2>/dev/null || true
}

# pids_mentioning STRING: PIDs whose command line contains STRING. Used to
# find (and check for) the processes a runtime started for us, e.g. shims
# whose command line names our private containerd socket.
pids_mentioning() {
  local p
  for p in /proc/[0-9]*; do
    [ "${p#/proc/}" != "$$" ] || continue
    tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -qF -- "$1" && echo "${p#/proc/}"
  done
  return 0
}

# ---------------------------------------------------------------- packages and tools

# need_pkgs PKG...: install the Debian packages that are missing; quick and
# silent when all are present. `apt-get update` runs at most once per run.
need_pkgs() {
  local p missing=() t
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  # Installing docker.io where systemd runs starts the system's Docker
  # engine on the real host (its bridge, its iptables rules): not ours to
  # do, unless a policy-rc.d denies the start (exit 101), as in containers.
  local rc=0
  if [ -x /usr/sbin/policy-rc.d ]; then /usr/sbin/policy-rc.d docker start >/dev/null 2>&1 || rc=$?; fi
  if [[ " ${missing[*]} " == *" docker.io "* ]] && [ -d /run/systemd/system ] && [ "$rc" != 101 ]; then
    fail "docker.io is missing; with systemd, installing it starts Docker on this host: install it yourself (apt-get install docker.io), then run again"
  fi
  t=$(ts)
  if [ ! -e "$BASE/.apt-updated" ]; then
    apt-get update -qq >"$W/logs/apt.log" 2>&1 || fail "apt-get update (see $W/logs/apt.log)"
    touch "$BASE/.apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$W/logs/apt.log" 2>&1 ||
    fail "apt-get install ${missing[*]}"
  elapsed "apt-get install ${missing[*]}" "$t"
}

# build_go_tools: cnitool and the reference plugins at the versions pinned
# in go.mod (never Debian's containernetworking-plugins). `go build` is a
# no-op when nothing changed, so this is cheap on a warm machine.
build_go_tools() {
  local t
  t=$(ts)
  mkdir -p "$TOOLS"
  (cd "$REPO" && CGO_ENABLED=0 go build -o "$TOOLS/" \
    github.com/containernetworking/cni/cnitool \
    github.com/containernetworking/plugins/plugins/main/ptp \
    github.com/containernetworking/plugins/plugins/ipam/host-local \
    github.com/containernetworking/plugins/plugins/main/loopback) >"$W/logs/go-build.log" 2>&1 ||
    fail "go build cnitool and reference plugins (see $W/logs/go-build.log)"
  elapsed "go build cnitool ptp host-local loopback" "$t"
}

# build_crictl: crictl is not in go.mod; build it once into the cache (with
# its own GOPATH/GOCACHE there) and reuse the binary on later runs. Once it
# is built, its ~700 MB of module and build cache are dropped: the binary
# (~40 MB) is all that later runs need.
build_crictl() {
  [ -x "$CRICTL" ] && return 0
  local t
  t=$(ts)
  GOBIN=$(dirname "$CRICTL") GOPATH=$E2E_CACHE/gopath GOMODCACHE=$E2E_CACHE/gopath/pkg/mod GOCACHE=$E2E_CACHE/go-build \
    GOFLAGS=-modcacherw CGO_ENABLED=0 \
    go install "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION" >"$W/logs/go-install-crictl.log" 2>&1 ||
    fail "go install crictl@$CRICTL_VERSION (see $W/logs/go-install-crictl.log)"
  rm -rf "$E2E_CACHE/gopath" "$E2E_CACHE/go-build"
  elapsed "go install crictl@$CRICTL_VERSION" "$t"
}

# make_cni_bin [PLUGIN...]: the plugin directory a client uses: ratchet from
# $BIN plus the named reference plugins built by build_go_tools.
# shellcheck disable=SC2120 # called with no arguments for ratchet alone
make_cni_bin() {
  local p
  CNI_BIN=$W/cni-bin
  mkdir -p "$CNI_BIN"
  install -m 0755 "$BIN/ratchet" "$CNI_BIN/"
  for p in "$@"; do install -m 0755 "$TOOLS/$p" "$CNI_BIN/"; done
}

# ---------------------------------------------------------------- images

# make_busybox_rootfs: a minimal root filesystem: Debian's static busybox
# and its applet links (sh, sleep, ip, ping...).
make_busybox_rootfs() {
  ROOTFS=$BASE/rootfs/busybox
  [ -x "$ROOTFS/bin/sh" ] && return 0
  mkdir -p "$ROOTFS"/{bin,proc,sys,dev,etc,tmp,root}
  cp /bin/busybox "$ROOTFS/bin/"
  chroot "$ROOTFS" /bin/busybox --install -s /bin
  echo 'root:x:0:0:root:/root:/bin/sh' >"$ROOTFS/etc/passwd"
  echo 'root:x:0:' >"$ROOTFS/etc/group"
}

# mkimage ROOTFS TAG OUT.tar CMD_JSON: pack a directory as a single-layer
# `docker save` archive, which `ctr images import` and `podman load` both
# read. No registry is needed. CMD (not ENTRYPOINT), so that a command given
# to `podman run IMAGE CMD...` replaces it instead of being its arguments.
mkimage() {
  local rootfs=$1 tag=$2 out=$3 cmd=$4 w diff cfg
  w=$(mktemp -d "$BASE/mkimage.XXXXXX")
  tar --numeric-owner -C "$rootfs" -cf "$w/layer.tar" .
  diff=$(sha256sum "$w/layer.tar" | cut -d' ' -f1)
  mkdir "$w/$diff"
  mv "$w/layer.tar" "$w/$diff/"
  printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":%s},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$cmd" "$diff" >"$w/config.json"
  cfg=$(sha256sum "$w/config.json" | cut -d' ' -f1)
  mv "$w/config.json" "$w/$cfg.json"
  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$cfg" "$tag" "$diff" >"$w/manifest.json"
  tar -C "$w" -cf "$out" manifest.json "$cfg.json" "$diff"
  rm -rf "$w"
}

# busybox_image: localhost/busybox:local as an archive ($BUSYBOX_TAR).
busybox_image() {
  make_busybox_rootfs
  BUSYBOX_TAR=$BASE/images/busybox.tar
  [ -f "$BUSYBOX_TAR" ] && return 0
  mkdir -p "$BASE/images"
  mkimage "$ROOTFS" localhost/busybox:local "$BUSYBOX_TAR" '["/bin/sh"]'
}

# pause_image: localhost/pause:local ($PAUSE_TAR), the CRI sandbox image: a
# static Go program that sleeps until SIGINT/SIGTERM (busybox as PID 1
# ignores SIGTERM, which would make every `crictl stopp` wait for its timeout).
pause_image() {
  PAUSE_TAR=$BASE/images/pause.tar
  [ -f "$PAUSE_TAR" ] && return 0
  local src=$BASE/pause-src
  mkdir -p "$src" "$BASE/rootfs/pause" "$BASE/images"
  cat >"$src/main.go" <<'EOF'
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGINT, syscall.SIGTERM)
	<-c
}
EOF
  printf 'module pause\n\ngo 1.21\n' >"$src/go.mod"
  (cd "$src" && CGO_ENABLED=0 go build -ldflags='-s -w' -o "$BASE/rootfs/pause/pause" .) ||
    fail "go build pause"
  mkimage "$BASE/rootfs/pause" localhost/pause:local "$PAUSE_TAR" '["/pause"]'
}

# ---------------------------------------------------------------- network namespaces

# new_netns NAME: `ip netns add` a namespace (lo up) and register its removal.
# Names carry our PID so that two runs can never share one.
new_netns() {
  ip netns add "$1"
  on_exit "ip netns del '$1'"
  ip -n "$1" link set lo up
}

# host_netns: the throwaway "host" netns every runtime runs in ($HOSTNS,
# $HOST_NETNS path). ptp's host-side veths and routes, ip_forward, the
# containerd streaming server: all land there, never in the real host.
# Enter it with `nsenter --net=` (not `ip netns exec`, which remounts /sys
# and then runc finds no cgroup mount).
host_netns() {
  HOSTNS=ratchet-e2e-$CLIENT-host-$$
  HOST_NETNS=/var/run/netns/$HOSTNS
  new_netns "$HOSTNS"
}
in_host() { nsenter --net="$HOST_NETNS" "$@"; }

# hold_netns NETNS_PATH NAME: bind-mount a netns onto $W/held-NAME, so it
# outlives its container. After DEL we can then look inside and prove that
# ratchet's DEL removed its links -- not the kernel tearing the netns down.
# (Not to be called in $(...): on_exit must run in the main shell.)
hold_netns() {
  local f=$W/held-$2
  touch "$f"
  mount --bind "$1" "$f" || fail "cannot hold netns $1"
  on_exit "umount '$f'"
}

# netns_links NETNS_PATH: one line per netdev in that netns (`ip -o link`,
# which shows the ifalias too).
netns_links() { nsenter --net="$1" ip -o link show; }

# park_netns STORE_DIR: the name of ratchet's parking netns for that store
# directory (in /var/run/netns): ratchet-park-<first 8 hex of BLAKE2b-256(dir), b2sum -l 256>.
# The plugin makes it for the first pod link and never deletes it.
park_netns() { echo "ratchet-park-$(printf %s "$1" | b2sum -l 256 | cut -c1-8)"; }

# ratchet_leftovers NETNS_PATH: netdevs there that carry ratchet's marker.
ratchet_leftovers() { netns_links "$1" | grep 'alias ratchet:' || true; }

# ---------------------------------------------------------------- assertions

# retry N CMD...: run CMD up to N times, 0.5 s apart, until it succeeds.
# Used for things that settle asynchronously (veth carrier, IPv6 DAD, a
# runtime's cleanup process), never to paper over a wrong result.
retry() {
  local n=$1 i
  shift
  for ((i = 1; i <= n; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    [ "$i" -eq "$n" ] || sleep 0.5
  done
  return 1
}

# expect_link NETNS_PATH IFNAME CIDR...: IFNAME exists there, is up, carries
# ratchet's marker alias and every given address.
# traffic_flows RUN_IN_A RUN_IN_B WHO: ping over the ratchet link from
# inside each end (RUN_IN_* is a command prefix such as "in_pod pod-a"):
# IPv4 both ways and IPv6 from A; WHO names the ends in failure messages.
traffic_flows() {
  local run_a=$1 run_b=$2 who=$3
  retry 10 $run_a ping -c 1 -W 1 "$B_IP4" || fail "$who A cannot ping B ($B_IP4)"
  retry 10 $run_a ping -c 1 -W 1 "$B_IP6" || fail "$who A cannot ping B ($B_IP6)"
  retry 10 $run_b ping -c 1 -W 1 "$A_IP4" || fail "$who B cannot ping A ($A_IP4)"
}

expect_link() {
  local nsp=$1 ifname=$2 cidr line addrs
  shift 2
  line=$(nsenter --net="$nsp" ip -o link show dev "$ifname" 2>/dev/null) ||
    fail "$ifname does not exist in $nsp; links there: $(netns_links "$nsp" | cut -d' ' -f2 | tr '\n' ' ')"
  grep -q 'alias ratchet:' <<<"$line" || fail "$ifname in $nsp has no 'alias ratchet:' marker: $line"
  grep -q ',UP' <<<"$line" || fail "$ifname in $nsp is not up: $line"
  addrs=$(nsenter --net="$nsp" ip -o addr show dev "$ifname")
  for cidr in "$@"; do
    grep -qF " $cidr " <<<"$addrs" || fail "$ifname in $nsp lacks address $cidr; has: $(awk '{print $4}' <<<"$addrs" | tr '\n' ' ')"
  done
}

# expect_no_link NETNS_PATH IFNAME: IFNAME is gone from that netns.
expect_no_link() {
  if nsenter --net="$1" ip link show dev "$2" >/dev/null 2>&1; then
    fail "$2 still exists in $1: $(nsenter --net="$1" ip -o link show dev "$2")"
  fi
}

# expect_no_ratchet NETNS_PATH WHAT: no netdev with ratchet's marker there.
expect_no_ratchet() {
  local left
  left=$(ratchet_leftovers "$1")
  [ -z "$left" ] || fail "ratchet netdevs left in $2 ($1): $left"
}

# ping_from NETNS_PATH ADDR: ping from a netns with the host's ping
# (iputils), a few tries so that carrier and IPv6 DAD can settle.
ping_from() { retry 10 nsenter --net="$1" ping -n -c 1 -W 1 "$2"; }

# ---------------------------------------------------------------- the real host

# snapshot_real_host / expect_real_host_untouched: the real host netns must
# have the same netdevs and the same ip_forward after the test as before,
# and nothing of ratchet's.
snapshot_real_host() {
  _host_links_before=$(ip -o link show | awk -F': ' '{print $2}' | sort)
  _host_fwd_before=$(cat /proc/sys/net/ipv4/ip_forward)
}
expect_real_host_untouched() {
  local now
  now=$(ip -o link show | awk -F': ' '{print $2}' | sort)
  [ "$now" = "$_host_links_before" ] ||
    fail "the real host's netdevs changed: $(diff <(echo "$_host_links_before") <(echo "$now") | grep '^[<>]' | tr '\n' ' ')"
  [ "$(cat /proc/sys/net/ipv4/ip_forward)" = "$_host_fwd_before" ] || fail "the real host's ip_forward changed"
  expect_no_ratchet /proc/self/ns/net "the real host netns"
  ok "real host netns untouched (same netdevs, same ip_forward, no ratchet marker)"
}

# ---------------------------------------------------------------- CNI configs

# ratchet_conf [LINKS_JSON]: ratchet's plugin entry (not a whole file): its
# own store and log under $W, and the given static links (default none).
ratchet_conf() {
  local links=${1:-[]}
  jq -n --arg dir "$W/store" --arg log "$W/logs/ratchet.log" --argjson links "$links" \
    '{type: "ratchet", store: {dir: $dir}, logFile: $log, logLevel: "debug", links: $links}'
}

# link_to PEER_NETNS_PATH: the one static link every client test makes:
# in1 (A's end) <-> in2 (B's end) over a veth pair, IPv4 and IPv6.
link_to() {
  jq -n --arg peer "$1" --arg a4 "$A_IP4/24" --arg a6 "$A_IP6/64" --arg b4 "$B_IP4/24" --arg b6 "$B_IP6/64" \
    '[{name: "in1", ips: [$a4, $a6], peer: {netns: $peer, name: "in2", ips: [$b4, $b6]}}]'
}

# ptp_conf: the reference "cluster network" plugin entry: ptp + host-local
# on a documentation range, no masquerade (no iptables).
ptp_conf() {
  jq -n --arg subnet "$POD_SUBNET" --arg dir "$W/ipam" \
    '{type: "ptp", ipMasq: false, ipam: {type: "host-local", dataDir: $dir, ranges: [[{subnet: $subnet}]]}}'
}

# conflist NAME PLUGIN_JSON...: a whole .conflist (cniVersion 1.0.0, which
# containerd 1.6 requires).
conflist() {
  local name=$1
  shift
  printf '%s\n' "$@" | jq -s --arg name "$name" '{cniVersion: "1.0.0", name: $name, plugins: .}'
}

# write_atomically FILE: stdin to FILE via a rename, so a runtime that
# watches the directory never reads a half-written config. The temporary
# file sits in the same directory under a name libcni ignores (no .conf,
# .conflist or .json suffix): containerd's CRI reloads its CNI config on a
# write, rename or remove event there, and ignores "create" -- which is all
# a file moved in from elsewhere would produce.
write_atomically() {
  local tmp
  tmp=$(mktemp "$(dirname "$1")/.tmp.XXXXXX")
  cat >"$tmp"
  mv -f "$tmp" "$1"
}

# ---------------------------------------------------------------- containerd

# containerd_start [DIR [CNI_CONF_DIR]]: a private containerd (own root,
# state, sockets under DIR, default $W/containerd) inside the netns
# $HOST_NETNS (the throwaway host netns, or a simulated node's). Its CRI
# plugin runs CNI from $CNI_BIN and CNI_CONF_DIR (default $W/cni-conf);
# `ctr run --cni` ignores those and runs CNI itself. Sets CD and SOCK; the
# log is $W/logs/<basename DIR>.log.
containerd_start() {
  CD=${1:-$W/containerd}
  SOCK=$CD/containerd.sock
  local conf_dir=${2:-$W/cni-conf} log
  log=$W/logs/$(basename "$CD").log
  mkdir -p "$CD" "$conf_dir"
  cat >"$CD/config.toml" <<EOF
version = 2
root  = "$CD/root"
state = "$CD/state"
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$CD/containerd-ttrpc.sock"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:local"
  # This VM refuses negative oom_score_adj even to root (CRI asks -998 for
  # sandboxes): without this, runc fails with "can't get final child's PID".
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false          # no systemd here: cgroupfs
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir  = "$CNI_BIN"
    conf_dir = "$conf_dir"
    max_conf_num = 1
EOF
  local t i pid
  t=$(ts)
  # setsid: its own session, so a Ctrl-C or a CI timeout signalling our
  # process group cannot kill containerd before our cleanup has used it.
  # setsid and nsenter both exec (no fork), so $! is containerd's own PID.
  setsid nsenter --net="$HOST_NETNS" containerd --config "$CD/config.toml" >"$log" 2>&1 &
  pid=$!
  on_exit "containerd_stop $pid '$SOCK'"
  for i in $(seq 1 100); do
    ctr --address "$SOCK" version >/dev/null 2>&1 && { elapsed "containerd start" "$t"; return 0; }
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  fail "containerd did not start"
}

# containerd_stop PID [SOCK]: stop containerd (its socket: SOCK, default
# $SOCK). A test that ends normally has
# removed its containers already; after a failure some may remain, and their
# shims (and containers) would outlive containerd: so first force-delete
# every task and container it still has, in every namespace. Then stop any
# shim that is still there (found by our private socket path on its command
# line), by PID.
containerd_stop() {
  local p ns id sock=${2:-$SOCK}
  for ns in $(ctr --address "$sock" namespaces ls -q 2>/dev/null); do
    for id in $(ctr --address "$sock" -n "$ns" tasks ls -q 2>/dev/null); do
      ctr --address "$sock" -n "$ns" tasks delete --force "$id"
    done
    for id in $(ctr --address "$sock" -n "$ns" containers ls -q 2>/dev/null); do
      ctr --address "$sock" -n "$ns" containers delete "$id"
    done
  done
  kill_pid "$1"
  for p in $(pids_mentioning "$sock"); do
    echo "stopping leftover process $p: $(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline")"
    kill_pid "$p"
  done
}

# import_image TAR [NAMESPACE]: load an image archive into our containerd.
import_image() {
  ctr --address "$SOCK" -n "${2:-default}" images import "$1" >/dev/null ||
    fail "ctr images import $1"
}

# ---------------------------------------------------------------- crictl (the kubelet path)

# crictl_setup: point crictl at our private containerd, and remove every pod
# on exit, before containerd stops (cleanups run in reverse order). crictl
# runs in the host netns too, because containerd's exec streaming server
# listens on that netns's lo.
crictl_setup() {
  printf 'runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 30\n' "$SOCK" "$SOCK" >"$W/crictl.yaml"
  on_exit "crictl rmp -f -a"
}
crictl() { in_host env CRI_CONFIG_FILE="$W/crictl.yaml" "$CRICTL" "$@" 2>>"$W/logs/crictl.log"; }
crictl_or_fail() { crictl "$@" || fail "crictl $1: $(tail -1 "$W/logs/crictl.log")"; }

# sandbox_netns POD_ID: the path of a pod sandbox's netns (/var/run/netns/cni-...).
sandbox_netns() {
  crictl inspectp "$1" | jq -r '.info.runtimeSpec.linux.namespaces[] | select(.type == "network") | .path'
}

# ---------------------------------------------------------------- podman

# podman_setup: a private podman configuration under $P ($W/podman): its
# own storage, CNI networks from $CNI_BIN and $P/cni-conf, and this VM's
# quirks. podman/podman_or_fail below run podman with it, in the host netns.
# Both files go by env, which podman's `container cleanup` child (the one
# that runs DEL) also gets. On exit, every container of our private storage
# is removed: that also stops them, which runs their DEL and unmounts their
# root filesystems; then we wait for podman's helpers (podman_quiesce).
podman_setup() {
  P=$W/podman
  mkdir -p "$P/cni-conf" "$P/tmp"
  cat >"$P/containers.conf" <<EOF
[containers]
# This VM refuses to raise a hard rlimit even to root, and podman asks for
# more than the current ones (runc: "error setting rlimit type 7/6").
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[network]
network_backend = "cni"
cni_plugin_dirs = ["$CNI_BIN"]
network_config_dir = "$P/cni-conf"

[engine]
cgroup_manager = "cgroupfs"       # no systemd here
events_logger = "file"
events_logfile_path = "$P/events.log"
runtime = "runc"
tmp_dir = "$P/tmp"
EOF
  cat >"$P/storage.conf" <<EOF
[storage]
driver = "overlay"
runroot = "$P/runroot"
graphroot = "$P/root"
EOF
  PODMAN_ENV=(env CONTAINERS_CONF="$P/containers.conf" CONTAINERS_STORAGE_CONF="$P/storage.conf")
  on_exit "podman rm -f -t 0 -a; podman_quiesce"
}
podman() { in_host "${PODMAN_ENV[@]}" podman "$@" 2>>"$W/logs/podman.log"; }
podman_or_fail() { podman "$@" || fail "podman $1: $(tail -1 "$W/logs/podman.log")"; }

# podman_quiesce: wait until no process works on our private storage any
# more. `podman rm -f` returns while the container's conmon still runs its
# exit command, `podman container cleanup`, which mounts the storage again
# ($P/root/overlay): left alone, it races our unmount of $BASE. After 10 s,
# whatever is left (found by our private path on its command line) is
# stopped by PID.
podman_quiesce() {
  local i p
  for i in $(seq 1 100); do
    [ -n "$(pids_mentioning "$P/")" ] || return 0
    sleep 0.1
  done
  for p in $(pids_mentioning "$P/"); do
    echo "stopping leftover process $p: $(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline")"
    kill_pid "$p"
  done
  return 1
}

# ---------------------------------------------------------------- docker

# dockerd_start: Debian's Docker engine (docker.io) inside the throwaway
# host netns, with everything it keeps under $DK ($W/engine): socket, data
# root (images, containers, its containerd's root), exec root (its
# containerd's socket and state), pid file, config file and trust key. No bridge,
# iptables, forwarding or masquerading: containers run with --net=none, and
# the real host is never touched. dockerd starts and stops its own
# containerd. It also makes /run/docker/plugins (a fixed path): removed on
# exit when it was not there before. Sets DOCKER_HOST and DOCKER_CONFIG
# (the CLI's own files under $DK too); docker() and docker_or_fail() run
# Debian's CLI (/usr/bin/docker, the engine's own version; another docker
# earlier in PATH is ignored) in the host netns.
dockerd_start() {
  DK=$W/engine
  mkdir -p "$DK/cli" "$DK/bin"
  ln -sf /usr/bin/docker "$DK/bin/docker" # for scripts that run `docker` from PATH
  export DOCKER_HOST=unix://$DK/docker.sock DOCKER_CONFIG=$DK/cli
  [ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ] || fail "dockerd or docker is missing (Debian package docker.io)"
  if [ ! -e /run/docker ]; then on_exit "rmdir /run/docker/plugins /run/docker"; fi
  # Our own config file: /etc/docker/daemon.json is not read, and the
  # engine's trust key (which dockerd 20.10 writes to /etc/docker/key.json
  # by default; a config-file key only) goes under $DK.
  jq -n --arg key "$DK/key.json" '{"deprecated-key-path": $key}' >"$DK/daemon.json"
  local t pid i
  t=$(ts)
  # setsid: its own session (a Ctrl-C to our group cannot stop it before our
  # cleanup). setsid and nsenter exec: $! is dockerd's own PID.
  setsid nsenter --net="$HOST_NETNS" /usr/sbin/dockerd --host "$DOCKER_HOST" \
    --data-root "$DK/data" --exec-root "$DK/exec" --pidfile "$DK/dockerd.pid" \
    --config-file "$DK/daemon.json" \
    --bridge none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
    >"$W/logs/dockerd.log" 2>&1 &
  pid=$!
  DOCKERD_PID=$pid
  on_exit "dockerd_stop $pid"
  for i in $(seq 1 100); do
    docker version >/dev/null 2>&1 && { elapsed "dockerd start" "$t"; return 0; }
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  fail "dockerd did not start"
}

# dockerd_stop PID: a test that ends normally has removed its containers;
# after a failure, remove every one left (that stops it and its shim), then
# stop dockerd by its PID (it stops its containerd), then any process that
# still names our private directory (a shim), by PID.
dockerd_stop() {
  local id p
  for id in $(docker ps -aq 2>/dev/null); do docker rm -f "$id"; done
  kill_pid "$1"
  for p in $(pids_mentioning "$DK/"); do
    echo "stopping leftover process $p: $(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline")"
    kill_pid "$p"
  done
}
docker() { in_host /usr/bin/docker "$@" 2>>"$W/logs/docker.log"; }
docker_or_fail() { docker "$@" || fail "docker $1: $(tail -1 "$W/logs/docker.log")"; }

# docker_busybox_image [FILE...]: `docker import` the busybox root
# filesystem as busybox:latest (the name docker-run.sh runs), with each
# FILE added under /e2e/. No registry: a tarball, as `docker import` takes.
docker_busybox_image() {
  local r=$W/rootfs-docker f
  make_busybox_rootfs
  rm -rf "$r"
  cp -a "$ROOTFS" "$r"
  mkdir -p "$r/e2e"
  for f in "$@"; do install -m 0755 "$f" "$r/e2e/"; done
  tar --numeric-owner -C "$r" -c . | docker import - busybox:latest >/dev/null ||
    fail "docker import busybox:latest: $(tail -1 "$W/logs/docker.log")"
  rm -rf "$r"
}

# ---------------------------------------------------------------- multi-node (etcd + ratchetd)

# Simulated nodes (multinode.sh, cri-multinode.sh): one netns per node on an
# underlay, a bridge in a third "lan" netns. Node i has 192.0.2.i/24 on its
# eth0 and a default route via the lan (192.0.2.254), where etcd listens.
# Pod links then use 198.51.100.0/24, so that no pod address is an
# underlay one.
LAN_IP=192.0.2.254
ETCD_URL=http://$LAN_IP:2379
NODE_NS=() NODE_NETNS=() AGENT_PID=()
ETCD_PID=""

# underlay_setup N: netns $LAN_NS (bridge br0, 192.0.2.254/24) and nodes
# 1..N: NODE_NS[i] (an ip netns name) and NODE_NETNS[i] (its path), each
# with eth0 192.0.2.i/24 on the bridge and a default route via the lan.
underlay_setup() {
  local i
  LAN_NS=ratchet-e2e-$CLIENT-lan-$$
  new_netns "$LAN_NS"
  ip -n "$LAN_NS" link add br0 type bridge
  ip -n "$LAN_NS" addr add "$LAN_IP/24" dev br0
  ip -n "$LAN_NS" link set br0 up
  for ((i = 1; i <= $1; i++)); do
    NODE_NS[i]=ratchet-e2e-$CLIENT-node$i-$$
    NODE_NETNS[i]=/var/run/netns/${NODE_NS[i]}
    new_netns "${NODE_NS[i]}"
    # Both ends born where they belong: no move.
    ip -n "$LAN_NS" link add "node$i" type veth peer name eth0 netns "${NODE_NS[i]}"
    ip -n "$LAN_NS" link set "node$i" master br0 up
    ip -n "${NODE_NS[i]}" addr add "192.0.2.$i/24" dev eth0
    ip -n "${NODE_NS[i]}" link set eth0 up
    ip -n "${NODE_NS[i]}" route add default via "$LAN_IP"
  done
  retry 10 ip netns exec "${NODE_NS[1]}" ping -c 1 -W 1 "$LAN_IP" || fail "node1 cannot reach the lan ($LAN_IP)"
}
# on_node I CMD...: run CMD on node I (in its netns; nsenter, not `ip netns
# exec`: see ratchetd_start).
on_node() { nsenter --net="${NODE_NETNS[$1]}" "${@:2}"; }

# await_daemon PID WHAT LOG START_TS CHECK...: wait up to 10 s for CHECK to
# succeed while PID runs; fail, pointing at LOG, if PID dies or time runs out.
await_daemon() {
  local pid=$1 what=$2 log=$3 t=$4 i
  shift 4
  for i in $(seq 1 200); do
    "$@" && { elapsed "$what" "$t"; return 0; }
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  fail "$what: not up (see $log)"
}

# etcd_start: Debian's etcd (one member, fast ticks) in the lan netns on
# $ETCD_URL, its data under $W/etcd; on a restart, the same data. $ETCD_PID
# is etcd's own PID (setsid and nsenter exec); etcd_stop kills it.
etcd_start() {
  local t
  t=$(ts)
  [ -x /usr/bin/etcd ] || fail "/usr/bin/etcd is missing (Debian package etcd-server)"
  setsid nsenter --net="/var/run/netns/$LAN_NS" /usr/bin/etcd --name e2e --data-dir "$W/etcd" \
    --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster e2e=http://127.0.0.1:2380 --initial-cluster-state new \
    --heartbeat-interval 10 --election-timeout 100 --logger zap --log-level warn >>"$W/logs/etcd.log" 2>&1 &
  ETCD_PID=$!
  disown "$ETCD_PID" # no "Killed" notice from bash when we kill it
  await_daemon "$ETCD_PID" "etcd start" "$W/logs/etcd.log" "$t" etcd_healthy
}
etcd_healthy() { ETCDCTL_WAIT=200ms etcdctl endpoint health >/dev/null 2>&1; }
# etcd_stop [SIGNAL]: stop our etcd by its PID (SIGTERM, or e.g. KILL).
etcd_stop() {
  [ -n "$ETCD_PID" ] || return 0
  if [ "${1:-TERM}" = KILL ]; then
    kill -9 "$ETCD_PID" 2>/dev/null || true
    while kill -0 "$ETCD_PID" 2>/dev/null; do sleep 0.05; done
  else
    kill_pid "$ETCD_PID"
  fi
  ETCD_PID=""
}
# etcdctl ARGS...: etcdctl against our etcd, from the lan netns; each call
# gives up after ETCDCTL_WAIT (default 1s) to connect.
etcdctl() {
  nsenter --net="/var/run/netns/$LAN_NS" env ETCDCTL_API=3 /usr/bin/etcdctl --endpoints "$ETCD_URL" \
    --dial-timeout "${ETCDCTL_WAIT:-1s}" --command-timeout 2s "$@"
}

# parking_of_nodes N: ratchet's parking netns of nodes 1..N (one per store
# dir, $W/nodeI/store) are removed on exit; one left by a killed earlier run
# is removed now. Call it before starting what uses them, so that on_exit
# removes them after.
parking_of_nodes() {
  local n park
  for n in $(seq 1 "$1"); do
    park=$(park_netns "$W/node$n/store")
    if [ -e "/var/run/netns/$park" ]; then
      echo "removing $park, left by an earlier run" >&2
      ip netns del "$park"
    fi
    on_exit "ip netns del '$park'"
  done
}

# ratchetd_start I CONF: node I's agent, from the ratchet network's config
# file CONF (its store, node and vxlan settings), in node I's netns, with a
# quick resync, started as an operator would (`ip netns exec`, which execs:
# $! is ratchetd's own PID). Waits until its socket exists. AGENT_PID[I] is
# its PID.
# The agent may run under `ip netns exec` (a mount namespace of its own, a
# slave of ours: it still sees the parking netns the plugin bind-mounts in
# /var/run/netns later). The plugin may not: a parking netns it makes there
# would live only as long as that private mount namespace, so the plugin
# runs on a node with `nsenter --net` (on_node), as containerd runs there.
ratchetd_start() {
  local n=$1 conf=$2 t sock
  t=$(ts)
  sock=$(jq -r '(.plugins // [.])[] | select(.type == "ratchet") | .store.agentSocket' "$conf")
  setsid ip netns exec "${NODE_NS[$n]}" "$BIN/ratchetd" --config "$conf" --resync 2s --log-level debug \
    >>"$W/logs/ratchetd-node$n.log" 2>&1 &
  AGENT_PID[n]=$!
  await_daemon "${AGENT_PID[n]}" "ratchetd start on node$n" "$W/logs/ratchetd-node$n.log" "$t" test -S "$sock"
}
# ratchetd_stop I: stop node I's agent by its PID.
ratchetd_stop() {
  [ -n "${AGENT_PID[$1]:-}" ] || return 0
  kill_pid "${AGENT_PID[$1]}"
  AGENT_PID[$1]=""
}

# node_conf I: node I's ratchet plugin entry for the cluster network: the
# etcd store (its local part and agent socket under $W/nodeI), the node's
# name, the pod-annotations capability, a short store timeout (so that an
# outage fails an ADD in about 2 s). etcd is plaintext on the test's private
# lan: store.insecure says so.
node_conf() {
  jq -n --arg dir "$W/node$1/store" --arg sock "$W/node$1/ratchetd.sock" --arg ep "$ETCD_URL" \
    --arg prefix "/ratchet-e2e-$CLIENT" --arg node "node$1" --arg log "$W/logs/ratchet-node$1.log" '{
      type: "ratchet",
      store: {type: "etcd", dir: $dir, endpoints: [$ep], insecure: true, prefix: $prefix, agentSocket: $sock, timeout: "2s"},
      node: {name: $node}, logFile: $log, logLevel: "debug",
      capabilities: {"io.kubernetes.cri.pod-annotations": true}}'
}

# parking_of I: the path of node I's parking netns (named after its store dir).
parking_of() { echo "/var/run/netns/$(park_netns "$W/node$1/store")"; }
# tunnels I: node I's tunnels, "name:ifindex" sorted (the vxlan netdevs in
# its parking netns, named rvx<VNI>).
tunnels() {
  local p
  p=$(parking_of "$1")
  [ -e "$p" ] || return 0
  nsenter --net="$p" ip -o link show type vxlan | awk -F': ' '{ split($2, n, "@"); print n[1] ":" $1 }' | sort | tr '\n' ' '
}
# tunnels_each N: nodes 1 and 2 have N tunnels each.
tunnels_each() { [ "$(wc -w <<<"$(tunnels 1)") $(wc -w <<<"$(tunnels 2)")" = "$1 $1" ]; }
