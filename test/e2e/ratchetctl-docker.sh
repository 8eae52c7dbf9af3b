#!/usr/bin/env bash
# ratchetctl-docker.sh -- `ratchetctl connect -d CONTAINER,IFNAME[,CIDR...]`
# against a Docker Engine API: podman's Docker-compatible service. (docker.sh
# runs the same connect/disconnect against a real dockerd.)
#
# ratchetctl resolves a -d endpoint with one GET /containers/{id}/json on
# the unix socket named by $DOCKER_HOST (no Docker client library) and
# opens the netns of State.Pid. Here that socket is `podman system service`,
# run with the same private configuration and storage as podman.sh, in a
# throwaway host netns; the containers are started with the podman CLI
# (network none) and found by name through the service.
#
#   connect -d A,in1,192.0.2.1/24 -d B,in2,192.0.2.2/24   veth in both, ping
#   disconnect -p PID_A,in1                                both ends gone
#   connect -p ... -d ..., disconnect -d B,in2             -d works there too
#   unknown / stopped container, non-unix DOCKER_HOST      one-line errors
. "$(dirname "$0")/lib.sh"
e2e_init ratchetctl-docker

need_pkgs podman runc busybox-static iproute2 iputils-ping jq util-linux
[ -x "$BIN/ratchetctl" ] || fail "no ratchetctl binary in BIN=$BIN (run: make build)"
make_cni_bin
host_netns
busybox_image
podman_setup # private config and storage under $P; podman() runs in the host netns
podman_or_fail load -q -i "$BUSYBOX_TAR" >/dev/null

# --- the Docker-compatible API service, stopped by its PID on exit.
API=$W/podman.sock
t=$(ts)
# setsid: its own session (a Ctrl-C to our group cannot stop it before our
# cleanup). setsid, nsenter and env all exec: $! is podman's own PID.
setsid nsenter --net="$HOST_NETNS" "${PODMAN_ENV[@]}" \
  podman system service --time=0 "unix://$API" >"$W/logs/podman-service.log" 2>&1 &
svc=$!
on_exit "kill_pid $svc"
ready=""
for i in $(seq 1 100); do
  if podman --url "unix://$API" version >/dev/null 2>&1; then ready=1; break; fi
  kill -0 "$svc" 2>/dev/null || break
  sleep 0.1
done
[ -n "$ready" ] || fail "podman system service did not answer on $API"
elapsed "podman system service start" "$t"

# ratchetctl, pointed at the service, in the host netns.
ctl() { in_host env DOCKER_HOST="unix://$API" "$BIN/ratchetctl" "$@"; }

# run_container NAME: a detached busybox container with no network; sets
# PID[NAME] and NETNS[NAME] (its netns, by pid).
declare -A PID NETNS
run_container() {
  podman_or_fail run -d --name "$1" --network none localhost/busybox:local sleep 600 >/dev/null
  PID[$1]=$(podman inspect -f '{{.State.Pid}}' "$1")
  NETNS[$1]=/proc/${PID[$1]}/ns/net
  [ -e "${NETNS[$1]}" ] || fail "container $1: no process ${PID[$1]}"
}
in_container() { podman exec "$1" "${@:2}"; }
A=ratchet-e2e-da B=ratchet-e2e-db
run_container $A
run_container $B

# --- connect by container name, through the API.
t=$(ts)
out=$(ctl connect -d $A,in1,192.0.2.1/24 -d $B,in2,192.0.2.2/24 2>&1) || fail "ratchetctl connect -d: $out"
elapsed "ratchetctl connect -d -d" "$t"
[ "$out" = "connected -d $A,in1 <-> -d $B,in2 (veth)" ] || fail "unexpected connect output: $out"
expect_link "${NETNS[$A]}" in1 192.0.2.1/24
expect_link "${NETNS[$B]}" in2 192.0.2.2/24
# One veth pair: in1's peer is in2 (ip shows in1@if<in2's index>).
peer=$(nsenter --net="${NETNS[$A]}" ip -o link show dev in1 | awk -F': ' '{print $2}')
idx2=$(nsenter --net="${NETNS[$B]}" ip -o link show dev in2 | cut -d: -f1)
[ "$peer" = "in1@if$idx2" ] || fail "in1 should be a veth whose peer is in2 (ifindex $idx2), ip shows '$peer'"
in_container $A ip -o addr show dev in1 | grep -qF 192.0.2.1/24 || fail "busybox in $A does not see in1 with 192.0.2.1/24"
in_container $B ip -o addr show dev in2 | grep -qF 192.0.2.2/24 || fail "busybox in $B does not see in2 with 192.0.2.2/24"
ok "connect -d $A,in1 -d $B,in2 (containers found by name via podman's Engine API): one veth, in1 in $A and in2 in $B, up, addressed, marked"

retry 10 in_container $A ping -c 1 -W 1 192.0.2.2 || fail "$A cannot ping $B (192.0.2.2)"
retry 10 in_container $B ping -c 1 -W 1 192.0.2.1 || fail "$B cannot ping $A (192.0.2.1)"
ok "traffic flows between the containers over the veth (busybox ping via podman exec, both ways)"

# --- disconnect by pid: both ends go.
out=$(ctl disconnect -p "${PID[$A]},in1" 2>&1) || fail "ratchetctl disconnect -p: $out"
[ "$out" = "disconnected -p ${PID[$A]},in1" ] || fail "unexpected disconnect output: $out"
expect_no_link "${NETNS[$A]}" in1
expect_no_link "${NETNS[$B]}" in2
expect_no_ratchet "${NETNS[$A]}" "$A"
expect_no_ratchet "${NETNS[$B]}" "$B"
if in_container $A ip link show dev in1 >/dev/null 2>&1; then fail "busybox in $A still sees in1"; fi
ok "disconnect -p ${PID[$A]},in1 removed both ends (in1 from $A, in2 from $B)"

# --- disconnect takes every endpoint kind (-n, -a, -p, -c, -d): -d too.
out=$(ctl connect -p "${PID[$A]},in1,192.0.2.1/24" -d $B,in2,192.0.2.2/24 2>&1) || fail "ratchetctl connect -p -d: $out"
expect_link "${NETNS[$B]}" in2 192.0.2.2/24
out=$(ctl disconnect -d $B,in2 2>&1) || fail "ratchetctl disconnect -d: $out"
[ "$out" = "disconnected -d $B,in2" ] || fail "unexpected disconnect output: $out"
expect_no_link "${NETNS[$A]}" in1
expect_no_link "${NETNS[$B]}" in2
out=$(ctl disconnect -d $B,in2 2>&1) || fail "a second ratchetctl disconnect -d failed: $out"
[ "$out" = "-d $B,in2: already gone" ] || fail "unexpected output of a second disconnect: $out"
ok "connect -p + -d, then disconnect -d $B,in2 removed both ends; a second disconnect says 'already gone' and exits 0"

# --- errors: one line, non-zero, nothing made.
# expect_error WANT CMD...: CMD fails with status 1 and one line on stderr
# containing WANT, and prints nothing on stdout.
expect_error() {
  local want=$1 rc=0
  shift
  "$@" >"$W/err.out" 2>"$W/err.err" || rc=$?
  [ "$rc" = 1 ] || fail "'${*: -4}' should fail with status 1, got $rc: $(cat "$W/err.err")"
  [ ! -s "$W/err.out" ] || fail "'${*: -4}' printed on stdout: $(cat "$W/err.out")"
  [ "$(wc -l <"$W/err.err")" = 1 ] || fail "'${*: -4}' should print one error line, printed: $(tr '\n' '|' <"$W/err.err")"
  grep -qF -- "$want" "$W/err.err" || fail "'${*: -4}' error should say '$want', says: $(cat "$W/err.err")"
  cat "$W/err.err"
}
err=$(expect_error 'no such container "ratchet-e2e-nosuch"' ctl connect -d ratchet-e2e-nosuch,in1,192.0.2.1/24 -d $B,in2,192.0.2.2/24)
expect_no_link "${NETNS[$B]}" in2
ok "unknown container: exit 1, one line ($err), nothing created in $B"

podman_or_fail create --name ratchet-e2e-dc --network none localhost/busybox:local sleep 600 >/dev/null
err=$(expect_error 'container "ratchet-e2e-dc" is not running' ctl connect -d ratchet-e2e-dc,in1 -d $B,in2)
expect_no_link "${NETNS[$B]}" in2
err2=$(expect_error 'only unix:// sockets are supported' in_host env DOCKER_HOST=tcp://192.0.2.9:2375 "$BIN/ratchetctl" connect -d $A,in1 -d $B,in2)
ok "created-not-running container ($err) and a tcp:// DOCKER_HOST ($err2): exit 1, one line each"

# --- the end: containers removed, the service stopped by its PID.
podman_or_fail rm -f -t 0 $A $B ratchet-e2e-dc >/dev/null
[ -z "$(podman ps -aq)" ] || fail "containers left: $(podman ps -aq | tr '\n' ' ')"
podman_quiesce || fail "podman's conmon / container cleanup still ran 10 s after podman rm"
kill_pid "$svc"
if kill -0 "$svc" 2>/dev/null; then fail "podman system service (pid $svc) still runs"; fi
ok "containers removed (and their conmon and cleanup processes gone); podman system service (pid $svc) stopped"
expect_real_host_untouched
