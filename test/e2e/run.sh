#!/usr/bin/env bash
# run.sh -- ratchet's end-to-end suite with real CNI clients.
#
#   bash test/e2e/run.sh                 # all clients: cnitool ctr cri cri-podlinks podman
#                                        # ratchetctl-docker docker multinode cri-multinode
#   bash test/e2e/run.sh cnitool cri     # a subset, in the order given
#
# As root. BIN (default <repo>/bin) must hold a built ratchet (make build).
# Each client script stops at its first failed assertion; the other clients
# still run. Then the suite checks that nothing is left behind (netns,
# mounts, processes, the real host) and prints the closing line CI reads:
#   e2e: N passed, M failed
# N proven facts ("ok" lines); M failed client scripts and leftover checks.
# The exit status is 0 iff M is 0.
. "$(dirname "$0")/lib.sh"

ALL_CLIENTS=(cnitool ctr cri cri-podlinks podman ratchetctl-docker docker multinode cri-multinode)
clients=("$@")
[ ${#clients[@]} -gt 0 ] || clients=("${ALL_CLIENTS[@]}")
for c in "${clients[@]}"; do
  if [[ " ${ALL_CLIENTS[*]} " != *" $c "* ]]; then
    echo "usage: $0 [${ALL_CLIENTS[*]}]..." >&2
    echo "FAIL: run: unknown client '$c'" >&2
    exit 2
  fi
done

CLIENT=run
[ "$(id -u)" = 0 ] || { echo "FAIL: run: must run as root" >&2; exit 1; }
trap _run_cleanups EXIT # prints the closing line, after cleaning up
trap 'exit 130' INT TERM
[ -x "$BIN/ratchet" ] || fail "no ratchet binary in BIN=$BIN (run: make build)"
base_claim
on_exit base_release
W=$BASE/run
mkdir -p "$W/logs"
snapshot_real_host
# runtime_netns: the netns handles the runtimes make in /run/netns:
# cni-<uuid> (containerd CRI) and netns-<uuid> (podman).
runtime_netns() {
  local f
  for f in /run/netns/cni-* /run/netns/netns-*; do
    if [ -e "$f" ]; then echo "${f##*/}"; fi
  done | sort
}
netns_before=$(runtime_netns)

# soft CMD...: run a check that may `fail` without ending the suite: in a
# subshell, whose "ok" line we count here.
soft() {
  if ("$@"); then PASSED=$((PASSED + 1)); else FAILED=$((FAILED + 1)); fi
}

suite_start=$(ts)
for c in "${clients[@]}"; do
  echo "=== $c"
  t=$(ts)
  # E2E_OWNER: run.sh owns $BASE. E2E_TALLY: where the client writes
  # "passed failed" instead of printing its own closing line.
  rm -f "$BASE/$c.tally"
  E2E_OWNER=1 E2E_TALLY=$BASE/$c.tally bash "$E2E_DIR/$c.sh" || echo "=== $c FAILED"
  elapsed "$c total" "$t"
  if read -r p f <"$BASE/$c.tally" 2>/dev/null; then
    PASSED=$((PASSED + p)) FAILED=$((FAILED + f))
  else
    echo "FAIL: $c: the script did not report a result" >&2
    FAILED=$((FAILED + 1))
  fi
done

# Nothing left behind by any client.
echo "=== leftovers"
no_netns_left() {
  local left c p d
  left=$(ip netns list | grep -o '^ratchet-e2e-[^ ]*' | tr '\n' ' ' || true)
  [ -z "$left" ] || fail "netns left: $left"
  # Only new ones count: other users of this machine may have their own.
  left=$(runtime_netns | comm -13 <(echo "$netns_before") - | tr '\n' ' ')
  [ -z "$left" ] || fail "runtime netns left in /run/netns: $left"
  # ratchet's parking netns (one per store dir; ratchet never deletes it):
  # the clients' stores are $BASE/CLIENT/store (and $BASE/CLIENT/nodeN/store
  # for the simulated nodes of the multi-node clients), so we know their
  # names (and never mistake another user's parking netns for ours).
  for c in "${clients[@]}"; do
    for d in "$BASE/$c/store" "$BASE/$c/node1/store" "$BASE/$c/node2/store"; do
      p=$(park_netns "$d")
      if [ -e "/run/netns/$p" ]; then left+="$p "; fi
    done
  done
  [ -z "$left" ] || fail "ratchet parking netns left in /run/netns: $left"
  ok "no netns left (ours, the runtimes' cni-*/netns-* in /run/netns, ratchet's parking netns of our stores)"
}
no_mounts_left() {
  local left
  left=$(awk -v d="$BASE/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | tr '\n' ' ')
  [ -z "$left" ] || fail "mounts left under $BASE: $left"
  ok "no mount left under $BASE"
}
# Every process started for us names $BASE on its command line (containerd,
# its shims, conmon, ...).
no_processes_left() {
  local p left=""
  for p in $(pids_mentioning "$BASE"); do left+="[$p] $(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") "; done
  [ -z "$left" ] || fail "processes left: $left"
  ok "no process left that was started for the suite"
}
soft no_netns_left
soft no_mounts_left
soft no_processes_left
soft expect_real_host_untouched
elapsed "whole suite" "$suite_start"
if [ "$FAILED" -gt 0 ]; then
  _failed_msg="$FAILED failed" # the FAIL lines are above; exit 1 after cleanup
  exit 1
fi
