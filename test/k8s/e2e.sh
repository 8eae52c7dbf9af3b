#!/usr/bin/env bash
# A real single-node Kubernetes e2e: etcd (Debian), kube-apiserver,
# kube-controller-manager, kube-scheduler and a kubelet (built by
# test/k8s/build.sh) with containerd 1.6 + runc (Debian), the cluster's own
# network the reference ptp + host-local plugins, and ratchet installed by
# the project's own DaemonSet (deploy/ratchet-daemonset.yaml) from an image
# built here and imported, no registry; its ratchetd container reports to
# the API server in-cluster (deploy/ratchetd-rbac.yaml). Then, through
# kubectl only: a 3-pod line declared by ratchet.cni.dev/links, created out
# of order, pings over every link, each pod's links in its network-status
# annotation, a link added to two running pods by annotating them (a
# one-sided declaration first: a PeerRefused Event) and removed again, the
# middle pod deleted and re-created, a pod without annotations, and the
# DaemonSet's removal giving the node its CNI config back. See
# docs/kubernetes.md, "Try it on a real kubelet".
#
# Where things run: every daemon inside a throwaway network namespace (the
# "node": lo + a veth pair whose both ends are in it) and one private mount
# namespace held by a sleeping "holder" process. In that mount namespace
# tmpfs hides the host's /run, /var/lib, /var/log, /opt and /etc/cni, and
# fake files hide the four sysctls the kubelet would rewrite on the host. So
# /opt/cni/bin and /etc/cni/net.d, which the DaemonSet mounts, are the
# node's own, never the host's. The kubelet's cgroups live under a cgroup
# root of this run's own (cgroup v1 is not namespaced).
#
# Cleanup always runs (trap), also on failure, and is asserted: no process,
# mount, cgroup or netns of this run left, the host's iptables and nftables
# rules unchanged.
#
# usage: e2e.sh          as root
# env:   BIN      ratchet's binaries (default: ./bin, from `make build`)
#        K8S_BIN  the Kubernetes binaries (default: what test/k8s/build.sh prints)
#        K8S_E2E_KEEP=1   keep the work dir (logs) after a passing run
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BIN=${BIN:-$REPO/bin}
export PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
[ "$(id -u)" = 0 ] || { echo "k8s-e2e: needs root" >&2; exit 1; }
for b in ratchet ratchetctl ratchetd; do
  [ -x "$BIN/$b" ] || { echo "k8s-e2e: $BIN/$b missing: run make build" >&2; exit 1; }
done
T0=$(date +%s)
log() { echo "[k8s-e2e $(date +%T) +$(( $(date +%s) - T0 ))s] $*"; }
fail() { log "FAIL: $*"; exit 1; }

# --- names and addresses: unique per run, test ranges only (RFC 5737/3849)
ID=$$
NS=rk8s-$ID                          # the node's network namespace
NODE=k8se2e-node
NODEIP=203.0.113.1                   # node InternalIP, apiserver advertise address
SVC_CIDR=203.0.113.128/25            # first address: the kubernetes Service
SVC_IP=203.0.113.129
SVC_PORT=443                         # the kubernetes Service's port (the apiserver's is 6443)
POD_CIDR=198.51.100.0/24             # the ptp network's pods
CGROOT=ratchet-k8s-e2e-$ID           # the kubelet's cgroupRoot, in every v1 hierarchy
K=$(mktemp -d /tmp/ratchet-k8s-e2e.XXXXXX)
RUN=$K/run LOG=$K/logs
mkdir -p "$RUN" "$LOG"

# --- what the host looks like before, to compare after
host_rules() { { iptables-save 2>/dev/null | grep -v '^#'; ip6tables-save 2>/dev/null | grep -v '^#'; nft list ruleset 2>/dev/null; } || true; }
host_rules > "$K/rules.before"

deps() {
  local want="etcd-server containerd runc containernetworking-plugins busybox-static openssl jq iproute2 util-linux iptables" missing=""
  for p in $want; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    log "apt-get install$missing"
    apt-get update -qq
    # policy-rc.d: no packaged service may start on the host.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
}

k8s_bins() {
  if [ -z "${K8S_BIN:-}" ]; then K8S_BIN=$(bash "$HERE/build.sh"); fi
  for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl crictl; do
    [ -x "$K8S_BIN/$b" ] || fail "$K8S_BIN/$b missing (make k8s-bins)"
  done
}

# --- images, by hand: the ratchet image as deploy/Containerfile describes it
# (FROM scratch, /bin/ratchet, ratchetctl, ratchetd, ENTRYPOINT ratchetctl),
# a busybox image for the test pods, and a sandbox ("pause") image.
images() {
  local r=$K/images/ratchet b=$K/images/busybox a
  mkdir -p "$r/bin" "$b/bin" "$b/etc" "$b/tmp" "$b/proc" "$b/sys" "$b/dev" "$b/root"
  cp "$BIN/ratchet" "$BIN/ratchetctl" "$BIN/ratchetd" "$r/bin/"
  bash "$HERE/image.sh" "$r" docker.io/library/ratchet:dev "$K/images/ratchet.tar" '{"Entrypoint":["/bin/ratchetctl"]}'
  cp /bin/busybox "$b/bin/busybox"
  for a in $("$b/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$b/bin/$a"; done
  echo 'root:x:0:0:root:/root:/bin/sh' > "$b/etc/passwd"; echo 'root:x:0:' > "$b/etc/group"; chmod 1777 "$b/tmp"
  bash "$HERE/image.sh" "$b" docker.io/local/busybox:e2e "$K/images/busybox.tar" '{"Cmd":["sh"]}'
  bash "$HERE/image.sh" "$b" registry.k8s.io/pause:3.10 "$K/images/pause.tar" \
    '{"Cmd":["/bin/sh","-c","trap \"exit 0\" TERM INT; while :; do sleep 3600 & wait $!; done"]}'
}

configs() {
  mkdir -p "$K/pki" "$K/containerd" "$K/kubelet" "$K/fakesys" "$K/manifests" "$K/etcd"
  ( cd "$K/pki"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=k8s-e2e-ca 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj /CN=kube-apiserver 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,IP:%s,IP:%s,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' $NODEIP $SVC_IP > san.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt -days 2 -extfile san.ext 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null; openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    echo "admin-$(openssl rand -hex 16),admin,uid-admin,\"system:masters\"" > tokens.csv
    echo "node-$(openssl rand -hex 16),system:node:$NODE,uid-node,\"system:nodes\"" >> tokens.csv )
  local u tok
  for u in admin node; do
    if [ $u = admin ]; then tok=$(awk -F, '$2=="admin"{print $1}' "$K/pki/tokens.csv"); else tok=$(awk -F, -v n="system:node:$NODE" '$2==n{print $1}' "$K/pki/tokens.csv"); fi
    cat > "$K/$u.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "https://127.0.0.1:6443", certificate-authority: $K/pki/ca.crt}}]
users: [{name: $u, user: {token: "$tok"}}]
contexts: [{name: local, context: {cluster: local, user: $u}}]
current-context: local
EOF
  done
  # The cluster's own network, as a node's network agent would write it.
  # It lands in the node's /etc/cni/net.d (the private tmpfs) in up().
  cat > "$K/10-k8se2e.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "k8se2e",
  "plugins": [
    {"type": "ptp", "ipMasq": false, "mtu": 1500,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}]}}
  ]
}
EOF
  echo "nameserver 127.0.0.1" > "$K/resolv.conf"
  # containerd 1.6: restrict_oom_score_adj because this VM refuses lowering
  # oom_score_adj (every sandbox fails without it); cgroupfs, no systemd.
  cat > "$K/containerd/config.toml" <<EOF
version = 2
root = "$K/containerd/root"
state = "$K/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs","io.containerd.snapshotter.v1.btrfs","io.containerd.snapshotter.v1.zfs","io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$RUN/containerd.sock"
[ttrpc]
  address = "$RUN/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$K/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/opt/cni/bin"
    conf_dir = "/etc/cni/net.d"
EOF
  cat > "$K/kubelet-config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
failSwapOn: false
cgroupDriver: cgroupfs
cgroupRoot: /$CGROOT
containerRuntimeEndpoint: unix://$RUN/containerd.sock
podLogsDir: $K/logs/pods
staticPodPath: $K/manifests
resolvConf: $K/resolv.conf
address: $NODEIP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
serializeImagePulls: false
volumePluginDir: $K/kubelet/volume-plugins
EOF
  # The kubelet writes these four sysctls only when they differ.
  echo 1 > "$K/fakesys/overcommit_memory"; echo 0 > "$K/fakesys/panic_on_oom"
  echo 10 > "$K/fakesys/panic"; echo 1 > "$K/fakesys/panic_on_oops"
}

# --- running things inside the node
holder() { cat "$RUN/holder.pid"; }
inns() { nsenter -t "$(holder)" -m -n -- "$@"; }
start() { # NAME CMD... : a daemon inside the node, its PID recorded
  local n=$1; shift
  nsenter -t "$(holder)" -m -n -- "$@" > "$LOG/$n.log" 2>&1 &
  echo $! > "$RUN/$n.pid"
}
waitfor() { # DESC SECONDS CMD...
  local d=$1 t=$2 i; shift 2
  for ((i = 0; i < t; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  fail "timeout ($t s) waiting for $d"
}
KC() { inns "$K8S_BIN/kubectl" --kubeconfig "$K/admin.kubeconfig" --cache-dir "$K/kubectl-cache" "$@"; }
CRI() { inns "$K8S_BIN/crictl" --runtime-endpoint "unix://$RUN/containerd.sock" "$@"; }

up() {
  # The kubelet's cgroup root, in every v1 hierarchy (cpuset needs its
  # parent's cpus and mems before anything can join it).
  local h
  for h in /sys/fs/cgroup/*/; do
    [ -d "$h" ] || continue
    mkdir "$h$CGROOT"
    if [ -f "$h/cpuset.cpus" ]; then cat "$h/cpuset.cpus" > "$h$CGROOT/cpuset.cpus"; cat "$h/cpuset.mems" > "$h$CGROOT/cpuset.mems"; fi
  done
  ip netns add "$NS"
  ip -n "$NS" link set lo up
  # A node needs a non-loopback address; this kernel has no dummy netdev,
  # so a veth pair with both ends in the node makes one.
  ip -n "$NS" link add eth0 type veth peer name eth0-peer
  ip -n "$NS" addr add $NODEIP/25 dev eth0
  ip -n "$NS" link set eth0-peer up
  ip -n "$NS" link set eth0 up
  # No kube-proxy runs here, so the node plays its part for the one Service
  # a pod uses: ratchetd's in-cluster config (KUBERNETES_SERVICE_HOST and
  # _PORT, which the kubelet sets to the kubernetes Service) reaches the
  # apiserver through the DNAT kube-proxy would install, in the node's own
  # netns (gone with it). So the DaemonSet is applied as shipped, without a
  # test-only override.
  ip -n "$NS" route add $SVC_CIDR dev eth0
  ip netns exec "$NS" nft -f - <<NFT
table ip k8se2e-kube-proxy {
  chain output {
    type nat hook output priority -100;
    ip daddr $SVC_IP tcp dport $SVC_PORT dnat to $NODEIP:6443
  }
}
NFT
  nsenter --net="/run/netns/$NS" unshare --mount --propagation slave \
    sh -c "echo \$\$ > $RUN/holder.pid; exec sleep infinity" </dev/null >/dev/null 2>&1 &
  waitfor holder 10 test -s "$RUN/holder.pid"
  MNTNS=$(readlink "/proc/$(holder)/ns/mnt")
  echo "$MNTNS" > "$RUN/mntns"
  inns sh -ec "
    mount -t tmpfs tmpfs /run; mkdir -p /run/netns
    # Shared, as systemd makes the host's /run: ratchetd's netns volume is
    # HostToContainer (rslave), which containerd refuses on a private mount.
    mount --make-rshared /run
    mount -t tmpfs tmpfs /var/log
    mount -t tmpfs tmpfs /var/lib
    mount -t tmpfs tmpfs /opt; mkdir -p /opt/cni/bin
    mkdir -p /etc/cni; mount -t tmpfs tmpfs /etc/cni; mkdir -p /etc/cni/net.d
    for f in overcommit_memory panic_on_oom; do mount --bind $K/fakesys/\$f /proc/sys/vm/\$f; done
    for f in panic panic_on_oops; do mount --bind $K/fakesys/\$f /proc/sys/kernel/\$f; done
    for p in /usr/lib/cni/*; do ln -s \$p /opt/cni/bin/; done
    cp $K/10-k8se2e.conflist /etc/cni/net.d/"
  log "node: netns $NS, holder $(holder)"

  start etcd etcd --name default --data-dir "$K/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster default=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381
  waitfor etcd 30 inns etcdctl --endpoints http://127.0.0.1:2379 endpoint health
  start kube-apiserver "$K8S_BIN/kube-apiserver" \
    --etcd-servers http://127.0.0.1:2379 \
    --bind-address 0.0.0.0 --secure-port 6443 --advertise-address $NODEIP \
    --tls-cert-file "$K/pki/apiserver.crt" --tls-private-key-file "$K/pki/apiserver.key" \
    --client-ca-file "$K/pki/ca.crt" --token-auth-file "$K/pki/tokens.csv" \
    --authorization-mode Node,RBAC \
    --service-account-issuer https://kubernetes.default.svc \
    --service-account-key-file "$K/pki/sa.pub" --service-account-signing-key-file "$K/pki/sa.key" \
    --service-cluster-ip-range $SVC_CIDR --kubelet-preferred-address-types InternalIP \
    --allow-privileged=true --profiling=false
  waitfor "apiserver /readyz" 120 KC get --raw /readyz
  start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig "$K/admin.kubeconfig" --authentication-kubeconfig "$K/admin.kubeconfig" --authorization-kubeconfig "$K/admin.kubeconfig" \
    --leader-elect=false --bind-address 127.0.0.1 \
    --root-ca-file "$K/pki/ca.crt" --service-account-private-key-file "$K/pki/sa.key" \
    --use-service-account-credentials=false --service-cluster-ip-range $SVC_CIDR \
    --flex-volume-plugin-dir "$K/kcm-volume-plugins"
  start kube-scheduler "$K8S_BIN/kube-scheduler" --kubeconfig "$K/admin.kubeconfig" \
    --authentication-kubeconfig "$K/admin.kubeconfig" --authorization-kubeconfig "$K/admin.kubeconfig" \
    --leader-elect=false --bind-address 127.0.0.1
  start containerd containerd --config "$K/containerd/config.toml"
  waitfor containerd 30 inns ctr --address "$RUN/containerd.sock" version
  local img
  for img in pause busybox ratchet; do
    inns ctr --address "$RUN/containerd.sock" -n k8s.io images import "$K/images/$img.tar" >/dev/null
  done
  start kubelet "$K8S_BIN/kubelet" --config "$K/kubelet-config.yaml" --kubeconfig "$K/node.kubeconfig" \
    --root-dir "$K/kubelet" --cert-dir "$K/kubelet/pki" --hostname-override $NODE --node-ip $NODEIP --v 2
  waitfor "node Ready" 120 node_ready
  waitfor "default service accounts" 60 KC -n default get sa default
  waitfor "kube-system service accounts" 60 KC -n kube-system get sa default
  log "node $NODE Ready ($(KC get node $NODE -o jsonpath='{.status.nodeInfo.containerRuntimeVersion}'))"
}
node_ready() {
  [ "$(KC get node $NODE -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]
}

# --- teardown: always, in reverse, each step on its own (set +e)
stopproc() { # NAME: SIGTERM, then SIGKILL after 10 s
  local f=$RUN/$1.pid p i
  [ -f "$f" ] || return 0
  p=$(cat "$f")
  if kill -0 "$p" 2>/dev/null; then
    kill "$p" 2>/dev/null
    for ((i = 0; i < 20; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$p" 2>/dev/null && log "stop $1: killed"
    wait "$p" 2>/dev/null
  fi
  rm -f "$f"
}
# ours lists the processes of this run that outlive their daemons: those
# in the node's mount namespace (containerd's shims) and those in the
# kubelet's cgroups (the containers).
ours() {
  local p mntns
  mntns=$(cat "$RUN/mntns" 2>/dev/null) || mntns=none
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$mntns" ] && echo "${p#/proc/}"
  done
  find /sys/fs/cgroup/*/"$CGROOT" -name cgroup.procs -exec cat {} + 2>/dev/null
}
teardown() {
  local rc=$? p i
  trap - EXIT
  set +e
  log "teardown"
  if [ -f "$RUN/holder.pid" ] && kill -0 "$(holder)" 2>/dev/null; then
    if [ -f "$RUN/kubelet.pid" ] && [ $rc != 0 ]; then
      KC get pods -A -o wide > "$LOG/pods-at-failure.txt" 2>&1
    fi
    stopproc kubelet
    # The sandboxes the kubelet left: stop and remove them through CRI,
    # so that the plugins' DEL runs.
    if [ -f "$RUN/containerd.pid" ]; then
      for p in $(CRI pods -q 2>/dev/null); do CRI stopp "$p" >/dev/null 2>&1; CRI rmp "$p" >/dev/null 2>&1; done
    fi
  fi
  for i in kube-scheduler kube-controller-manager kube-apiserver containerd etcd; do stopproc $i; done
  # Shims and containers, by PID; the holder last (its mount namespace
  # holds everything's mounts).
  for ((i = 0; i < 3; i++)); do
    for p in $(ours | sort -u); do [ "$p" = "$(holder 2>/dev/null)" ] || kill -9 "$p" 2>/dev/null; done
    sleep 0.5
  done
  stopproc holder
  for i in /sys/fs/cgroup/*/"$CGROOT"; do
    [ -d "$i" ] && find "$i" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  ip netns del "$NS" 2>/dev/null
  leftovers
  local left=$?
  if [ $rc = 0 ] && [ $left = 0 ] && [ -z "${K8S_E2E_KEEP:-}" ]; then
    rm -rf "$K"
  else
    log "logs kept in $K/logs"
  fi
  if [ $rc = 0 ] && [ $left != 0 ]; then rc=1; fi
  log "total $(( $(date +%s) - T0 ))s"
  if [ $rc = 0 ]; then echo "K8S-E2E: passed"; else echo "K8S-E2E: FAILED"; fi
  exit $rc
}
# leftovers asserts that teardown left nothing of this run on the host.
leftovers() {
  local bad=0 p
  sleep 0.5
  for p in $(ours | sort -u); do log "LEFT: process $p: $(tr '\0' ' ' < /proc/$p/cmdline 2>/dev/null)"; bad=1; done
  for p in /sys/fs/cgroup/*/"$CGROOT"; do [ -e "$p" ] && { log "LEFT: cgroup $p"; bad=1; }; done
  ls -d /sys/fs/cgroup/*/kubepods* 2>/dev/null | while read -r p; do log "note: $p exists (not this run's: its kubelet used /$CGROOT)"; done
  if ip netns list | grep -qw "$NS"; then log "LEFT: netns $NS"; bad=1; fi
  if grep -qF -e "$K" -e "$NS" /proc/self/mountinfo; then log "LEFT: mounts: $(grep -F -e "$K" -e "$NS" /proc/self/mountinfo)"; bad=1; fi
  host_rules > "$K/rules.after"
  if ! cmp -s "$K/rules.before" "$K/rules.after"; then
    log "LEFT: host firewall rules changed:"; diff "$K/rules.before" "$K/rules.after" | head -20; bad=1
  fi
  [ $bad = 0 ] && log "nothing left: no process, cgroup, netns, mount or firewall rule of this run"
  return $bad
}

# --- the checks, each through kubectl only
pod() { # NAME [LINKS_JSON]: a busybox pod, annotated when LINKS_JSON is given
  local ann=""
  [ -n "${2:-}" ] && ann="  annotations:
    ratchet.cni.dev/links: '$2'"
  KC apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $1
  namespace: default
$ann
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: docker.io/local/busybox:e2e
    imagePullPolicy: Never
    command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
EOF
}
ready() { KC wait --for=condition=Ready "pod/$1" --timeout=120s >/dev/null || fail "pod $1 not Ready: $(KC describe pod "$1" | tail -15)"; }
X() { KC exec "$1" -- "${@:2}"; }               # run a command in a pod
carrier() { X "$1" cat "/sys/class/net/$2/carrier" 2>/dev/null || echo none; }
ifaces() { X "$1" ls /sys/class/net | sort | tr '\n' ' ' | sed 's/ $//'; }
pings() { # POD ADDR: up to 15 tries (IPv6 DAD, stitching)
  local i
  for ((i = 0; i < 15; i++)); do X "$1" ping -c1 -W1 "$2" >/dev/null 2>&1 && return 0; sleep 1; done
  fail "$1 cannot ping $2"
}

# The line a - b - c: a:ab <-> b:ba (192.0.2.0/30, 2001:db8:ab::/64),
# b:bc <-> c:cb (192.0.2.4/30, 2001:db8:bc::/64).
LINK_A='[{"name":"ab","ips":["192.0.2.1/30","2001:db8:ab::1/64"],"peer":{"pod":"b","name":"ba"}}]'
LINK_B='[{"name":"ba","ips":["192.0.2.2/30","2001:db8:ab::2/64"],"peer":{"pod":"a","name":"ab"}},{"name":"bc","ips":["192.0.2.5/30","2001:db8:bc::1/64"],"peer":{"pod":"c","name":"cb"}}]'
LINK_C='[{"name":"cb","ips":["192.0.2.6/30","2001:db8:bc::2/64"],"peer":{"pod":"b","name":"bc"}}]'

check_pings() {
  pings a 192.0.2.2; pings a 2001:db8:ab::2
  pings b 192.0.2.1; pings b 2001:db8:ab::1
  pings b 192.0.2.6; pings b 2001:db8:bc::2
  pings c 192.0.2.5; pings c 2001:db8:bc::1
  log "pings pass over a-b and b-c, IPv4 and IPv6, both ways"
}

# ratchetd_watching: ratchetd reached the apiserver in-cluster and lists
# the node's pods.
ratchetd_watching() { KC -n kube-system logs ds/ratchet -c ratchetd 2>/dev/null | grep -q "watching the node's pods"; }
test_install() {
  inns cat /etc/cni/net.d/10-k8se2e.conflist > "$K/conflist.before"
  KC apply -f "$REPO/deploy/ratchetd-rbac.yaml" -f "$REPO/deploy/ratchet-daemonset.yaml" >/dev/null
  KC -n kube-system rollout status ds/ratchet --timeout=120s >/dev/null || fail "DaemonSet not rolled out: $(KC -n kube-system describe pods | tail -20)"
  log "DaemonSet: $(KC -n kube-system logs ds/ratchet -c install)"
  waitfor "ratchetd watching the node's pods" 60 ratchetd_watching
  log "ratchetd runs in the DaemonSet's pod, in-cluster, watching node $NODE's pods"
  # Its netns volume receives the node's later pins (HostToContainer on a
  # shared /run): else ratchetd warns at start and, once the plugin has
  # pinned the parking namespace, is not ready (test_edit checks that).
  ! KC -n kube-system logs ds/ratchet -c ratchetd | grep "does not receive the host's mounts" ||
    fail "ratchetd's /var/run/netns does not receive the node's mounts"
  inns jq -e '.plugins | length == 2 and .[0].type == "ptp" and .[1].type == "ratchet"' /etc/cni/net.d/10-k8se2e.conflist >/dev/null ||
    fail "ratchet not chained after ptp: $(inns cat /etc/cni/net.d/10-k8se2e.conflist)"
  inns cmp -s "$BIN/ratchet" /opt/cni/bin/ratchet || fail "/opt/cni/bin/ratchet is not bin/ratchet"
  # deploy/ratchet-multinode.yaml needs an etcd of the user's, so it does
  # not run here; the apiserver still checks it against its schemas
  # (strict: an unknown or misplaced field fails) without creating it.
  KC apply --dry-run=server --validate=strict -f "$REPO/deploy/ratchet-multinode.yaml" >/dev/null 2>"$K/multinode.err" ||
    fail "deploy/ratchet-multinode.yaml refused by the apiserver: $(cat "$K/multinode.err")"
  log "deploy/ratchet-multinode.yaml passes the apiserver's strict validation (dry run)"
}

test_line() {
  # Out of order: c, then a, then the middle b.
  pod c "$LINK_C"; ready c
  [ "$(carrier c cb)" = 0 ] || fail "c:cb has carrier before b exists"
  pod a "$LINK_A"; ready a
  pod b "$LINK_B"; ready b
  [ "$(ifaces a)" = "ab eth0 lo" ] || fail "a has [$(ifaces a)]"
  [ "$(ifaces b)" = "ba bc eth0 lo" ] || fail "b has [$(ifaces b)]"
  [ "$(ifaces c)" = "cb eth0 lo" ] || fail "c has [$(ifaces c)]"
  X a ip -4 addr show eth0 | grep -q "inet 198\.51\.100\." || fail "a's eth0 has no address from the ptp network"
  log "line created out of order (c, a, b): a[ab] b[ba bc] c[cb]"
  check_pings
}

# ratchet_status POD: the pod's ratchet entries of its network-status
# annotation, one "interface peer kind state mac ips" line each, sorted.
ratchet_status() {
  KC get pod "$1" -o json | jq -r '
    (.metadata.annotations["k8s.v1.cni.cncf.io/network-status"] // "[]") | fromjson | .[]
    | select(.name | startswith("ratchet.cni.dev/"))
    | "\(.interface) \(.["device-info"].peer) \(.["device-info"].kind) \(.["device-info"].state) \(.mac) \(.ips | sort | join(","))"' | sort
}
# want_status POD "IF PEER IPS" ...: the lines ratchet_status must show,
# with each interface's MAC as the pod's kernel has it, the kind veth and
# the state up.
want_status() {
  local p=$1 e ifn peer ips; shift
  for e in "$@"; do
    read -r ifn peer ips <<< "$e"
    echo "$ifn $peer veth up $(X "$p" cat "/sys/class/net/$ifn/address") $(tr ',' '\n' <<< "$ips" | sort | paste -sd,)"
  done | sort
}
# status_is POD "IF PEER IPS" ...: waits (the reporter writes within a few
# seconds) until the pod's network-status lists exactly these links.
status_is() {
  local p=$1 want got i; shift
  want=$(want_status "$p" "$@")
  for ((i = 0; i < 30; i++)); do
    got=$(ratchet_status "$p")
    [ "$got" = "$want" ] && return 0
    sleep 1
  done
  fail "pod $p's network-status: want [$want], got [$got]"
}

test_status() {
  status_is a "ab default/b:ba 192.0.2.1,2001:db8:ab::1"
  status_is b "ba default/a:ab 192.0.2.2,2001:db8:ab::2" "bc default/c:cb 192.0.2.5,2001:db8:bc::1"
  status_is c "cb default/b:bc 192.0.2.6,2001:db8:bc::2"
  log "network-status: each pod lists its ratchet links (interface, MAC, addresses, peer, veth, up)"
}

# events POD REASON: the messages of the pod's Events of that reason.
events() {
  KC get events --field-selector "involvedObject.kind=Pod,involvedObject.name=$1,reason=$2" -o json | jq -r '.items[].message'
}
waitevent() { # POD REASON PATTERN
  local i
  for ((i = 0; i < 30; i++)); do events "$1" "$2" | grep -q -- "$3" && return 0; sleep 1; done
  fail "no $2 Event on pod $1 matching '$3': $(KC get events --field-selector "involvedObject.name=$1" 2>&1)"
}

# A new link a:ac <-> c:ca (192.0.2.8/30, 2001:db8:ac::/64) on the running
# pods a and c, declared by editing their annotations.
LINK_A2='[{"name":"ab","ips":["192.0.2.1/30","2001:db8:ab::1/64"],"peer":{"pod":"b","name":"ba"}},{"name":"ac","ips":["192.0.2.9/30","2001:db8:ac::1/64"],"peer":{"pod":"c","name":"ca"}}]'
LINK_C2='[{"name":"cb","ips":["192.0.2.6/30","2001:db8:bc::2/64"],"peer":{"pod":"b","name":"bc"}},{"name":"ca","ips":["192.0.2.10/30","2001:db8:ac::2/64"],"peer":{"pod":"a","name":"ac"}}]'

test_edit() {
  # One side only: c declares no ca, so the link waits and a is told.
  KC annotate --overwrite pod/a "ratchet.cni.dev/links=$LINK_A2" >/dev/null
  waitevent a PeerRefused "link ac waits"
  [ "$(ifaces a)" = "ab eth0 lo" ] || fail "a has [$(ifaces a)] while c refuses ac"
  [ "$(ifaces c)" = "cb eth0 lo" ] || fail "c has [$(ifaces c)] before it declares ca"
  log "a declares ac alone: PeerRefused Event on a ($(events a PeerRefused | head -1)), no interface made"
  # c consents: the link is made in both running pods.
  KC annotate --overwrite pod/c "ratchet.cni.dev/links=$LINK_C2" >/dev/null
  waitevent c LinkApplied "link ca to default/a:ac made"
  [ "$(ifaces a)" = "ab ac eth0 lo" ] || fail "a has [$(ifaces a)] after c consented"
  [ "$(ifaces c)" = "ca cb eth0 lo" ] || fail "c has [$(ifaces c)] after it consented"
  pings a 192.0.2.10; pings a 2001:db8:ac::2
  pings c 192.0.2.9; pings c 2001:db8:ac::1
  status_is a "ab default/b:ba 192.0.2.1,2001:db8:ab::1" "ac default/c:ca 192.0.2.9,2001:db8:ac::1"
  status_is c "ca default/a:ac 192.0.2.10,2001:db8:ac::2" "cb default/b:bc 192.0.2.6,2001:db8:bc::2"
  log "c declares ca too: a:ac and c:ca made in the running pods, pings pass both ways, network-status lists them"
  # Gone from a's annotation: removed from both pods; c's edit back finds
  # nothing left to remove.
  KC annotate --overwrite pod/a "ratchet.cni.dev/links=$LINK_A" >/dev/null
  local i
  for ((i = 0; i < 30; i++)); do
    [ "$(ifaces a)" = "ab eth0 lo" ] && [ "$(ifaces c)" = "cb eth0 lo" ] && break
    sleep 1
  done
  [ $i -lt 30 ] || fail "after ac left a's annotation: a has [$(ifaces a)], c has [$(ifaces c)]"
  KC annotate --overwrite pod/c "ratchet.cni.dev/links=$LINK_C" >/dev/null
  status_is a "ab default/b:ba 192.0.2.1,2001:db8:ab::1"
  status_is c "cb default/b:bc 192.0.2.6,2001:db8:bc::2"
  [ "$(ifaces c)" = "cb eth0 lo" ] || fail "c has [$(ifaces c)] after its edit back"
  log "ac gone from a's annotation: a:ac and c:ca removed from both pods and from network-status"
  check_pings
  local ready
  ready=$(KC -n kube-system get pods -l app.kubernetes.io/name=ratchet -o jsonpath='{.items[*].status.containerStatuses[?(@.name=="ratchetd")].ready}')
  [ "$ready" = true ] || fail "ratchetd not ready with the parking namespace made: $(KC -n kube-system describe pods -l app.kubernetes.io/name=ratchet | grep -i readiness)"
}

test_plain() {
  pod plain; ready plain
  [ "$(ifaces plain)" = "eth0 lo" ] || fail "pod without annotations has [$(ifaces plain)]"
  X plain ip -4 addr show eth0 | grep -q "inet 198\.51\.100\." || fail "plain's eth0 has no address from the ptp network"
  log "pod without annotations: only eth0 and lo"
}

test_restart_middle() {
  KC delete pod b --wait=true --timeout=60s >/dev/null
  [ "$(ifaces a)" = "ab eth0 lo" ] || fail "a lost its interface while b is gone: [$(ifaces a)]"
  [ "$(ifaces c)" = "cb eth0 lo" ] || fail "c lost its interface while b is gone: [$(ifaces c)]"
  [ "$(carrier a ab)" = 0 ] || fail "a:ab has carrier while b is gone"
  [ "$(carrier c cb)" = 0 ] || fail "c:cb has carrier while b is gone"
  log "b deleted: a:ab and c:cb stay, without carrier"
  pod b "$LINK_B"; ready b
  [ "$(carrier a ab)" = 1 ] || fail "a:ab has no carrier after b came back"
  [ "$(carrier c cb)" = 1 ] || fail "c:cb has no carrier after b came back"
  log "b re-created: carrier back on a:ab and c:cb"
  check_pings
}

# cni_files: the conflist's bytes, and the inode, mtime and size of it and
# of the plugin binary. A removal and re-install in between would show up
# in the inodes even when the bytes come back the same (both are written
# by rename or copied anew; an install that finds them up to date writes
# neither).
cni_files() {
  inns sh -c 'cat /etc/cni/net.d/10-k8se2e.conflist; stat -c "%n %i %Y %s" /etc/cni/net.d/10-k8se2e.conflist /opt/cni/bin/ratchet' 2>&1
}
test_rollout() {
  cni_files > "$K/cni.installed"
  grep -q '"ratchet"' "$K/cni.installed" || fail "ratchet not in the conflist before the rollout: $(cat "$K/cni.installed")"
  # The uninstall container's one GET: allowed on its DaemonSet, and on
  # no other (resourceNames in deploy/ratchetd-rbac.yaml).
  local sa=system:serviceaccount:kube-system:ratchetd
  [ "$(KC -n kube-system auth can-i get daemonsets/ratchet --as=$sa)" = yes ] || fail "ratchetd's ServiceAccount may not get its DaemonSet"
  [ "$(KC -n kube-system auth can-i get daemonsets/other --as=$sa)" = no ] || fail "ratchetd's ServiceAccount may get any DaemonSet"
  [ "$(KC -n kube-system auth can-i list daemonsets --as=$sa)" = no ] || fail "ratchetd's ServiceAccount may list DaemonSets"
  local old i
  old=$(KC -n kube-system get pods -l app.kubernetes.io/name=ratchet -o name)
  [ -n "$old" ] || fail "no ratchet pod before the rollout"
  KC -n kube-system rollout restart ds/ratchet >/dev/null
  # The old pod gets its SIGTERM and goes; the conflist must not change
  # at any point, nor once it is gone (before the new pod is ready).
  for ((i = 0; i < 120; i++)); do
    cni_files > "$K/cni.now"
    cmp -s "$K/cni.installed" "$K/cni.now" ||
      fail "the node's CNI files changed during the rollout: $(diff "$K/cni.installed" "$K/cni.now")"
    KC -n kube-system get "$old" >/dev/null 2>&1 || break
    sleep 0.5
  done
  [ $i -lt 120 ] || fail "the old ratchet pod $old is still there 60 s after the rollout restart"
  cni_files > "$K/cni.now"
  cmp -s "$K/cni.installed" "$K/cni.now" ||
    fail "the node's CNI files changed once the old pod was gone: $(diff "$K/cni.installed" "$K/cni.now")"
  log "rollout restart: old pod $old gone, the conflist and plugin untouched throughout"
  KC -n kube-system rollout status ds/ratchet --timeout=120s >/dev/null || fail "rollout restart did not finish: $(KC -n kube-system describe pods | tail -20)"
  cni_files > "$K/cni.now"
  cmp -s "$K/cni.installed" "$K/cni.now" ||
    fail "the node's CNI files changed by the new pod: $(diff "$K/cni.installed" "$K/cni.now")"
  # ratchet still runs at ADD: a re-created b gets its links back.
  KC delete pod b --wait=true --timeout=60s >/dev/null
  pod b "$LINK_B"; ready b
  [ "$(ifaces b)" = "ba bc eth0 lo" ] || fail "b re-created after the rollout has [$(ifaces b)]"
  log "rollout done: the conflist and plugin unchanged, b re-created with its links"
}

test_uninstall() {
  KC delete pod a b c plain --wait=true --timeout=60s >/dev/null
  KC -n kube-system delete ds ratchet --wait=true --timeout=60s >/dev/null
  local i
  for ((i = 0; i < 60; i++)); do
    [ -z "$(KC -n kube-system get pods -l app.kubernetes.io/name=ratchet -o name 2>/dev/null)" ] && break
    sleep 1
  done
  [ $i -lt 60 ] || fail "the ratchet pod is still there 60 s after the DaemonSet's deletion"
  # Its ServiceAccount and permissions last, as docs/kubernetes.md says.
  KC delete -f "$REPO/deploy/ratchetd-rbac.yaml" --wait=true --timeout=60s >/dev/null
  log "DaemonSet deleted, its pod gone"
  inns cat /etc/cni/net.d/10-k8se2e.conflist > "$K/conflist.after"
  cmp -s "$K/conflist.before" "$K/conflist.after" ||
    fail "the node's conflist differs from before the install: $(diff "$K/conflist.before" "$K/conflist.after")"
  [ "$(inns ls /etc/cni/net.d)" = 10-k8se2e.conflist ] || fail "/etc/cni/net.d holds: $(inns ls /etc/cni/net.d)"
  ! inns test -e /opt/cni/bin/ratchet || fail "/opt/cni/bin/ratchet left after the DaemonSet's deletion"
  log "the node's CNI config is byte for byte what it was before the DaemonSet"
}

# Checks run in this order, each building on the one before; add new ones
# to this list.
CHECKS="test_install test_line test_status test_edit test_plain test_restart_middle test_rollout test_uninstall"

# One function, called on the last line: bash reads a script as it runs it,
# so an edit or checkout during a run must not change what the run does.
main() {
  trap teardown EXIT
  deps
  k8s_bins
  log "work dir $K, Kubernetes binaries $K8S_BIN"
  images
  configs
  up
  local c
  for c in $CHECKS; do $c; done
  log "all checks passed"
}
main "$@"; exit
