#!/usr/bin/env bash
# Builds the Kubernetes binaries the kubelet e2e runs (kube-apiserver,
# kube-controller-manager, kube-scheduler, kubelet, kubectl) and crictl from
# the Go module proxy, once, into a versioned cache outside the clone, so that
# a fresh clone on the same machine finds them and a new machine rebuilds them.
#
# k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces the staging
# modules (k8s.io/api, client-go, ...) with ./staging paths. A throwaway module
# that requires it and replaces each staging module with its published
# v0.<minor>.<patch> builds the commands (about 20 min on 2 cores; Go's build
# cache keeps a rebuild short).
#
# usage: build.sh            build when missing, print the bin directory
# env:   K8S_VERSION (v1.37.2), CRICTL_VERSION (v1.37.0),
#        RATCHET_K8S_CACHE (default $HOME/.cache/ratchet/k8s-$K8S_VERSION)
set -euo pipefail
# The whole script is one function, called on the last line: bash reads a
# script as it runs it, so a checkout that rewrites this file during the
# 20-minute build would otherwise make it run the rest of another file.
main() {
V=${K8S_VERSION:-v1.37.2}
CRICTL=${CRICTL_VERSION:-v1.37.0}
CACHE=${RATCHET_K8S_CACHE:-${HOME:-/root}/.cache/ratchet/k8s-$V}
BIN=$CACHE/bin
GO=${GO:-go}
export PATH=/usr/local/go/bin:$PATH

want="kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl crictl"
have=1
for b in $want; do [ -x "$BIN/$b" ] || have=0; done
if [ $have = 1 ]; then echo "$BIN"; exit 0; fi

log() { echo "[k8s-build $(date +%T)] $*" >&2; }
mkdir -p "$CACHE"
# One build at a time per cache (make check and make k8s-e2e may race).
exec 9>"$CACHE/.lock"
flock 9
have=1
for b in $want; do [ -x "$BIN/$b" ] || have=0; done
if [ $have = 1 ]; then echo "$BIN"; exit 0; fi

work=$(mktemp -d "$CACHE/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
log "building Kubernetes $V from the Go module proxy (once; about 20 min on 2 cores)"
$GO mod download -json "k8s.io/kubernetes@$V" >/dev/null
dir=$($GO env GOMODCACHE)/k8s.io/kubernetes@$V
staging="v0.${V#v1.}"
minor=${V#v1.}; minor=${minor%%.*}
{
  echo "module ratchet.local/k8sbuild"; echo
  echo "go $(awk '/^go /{print $2}' "$dir/go.mod")"; echo
  echo "require k8s.io/kubernetes $V"; echo
  echo "replace ("
  sed -n '/^replace (/,/^)/p' "$dir/go.mod" | awk -v v="$staging" '/=> \.\/staging/ {print "\t" $1 " => " $1 " " v}'
  echo ")"
} > go.mod
cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO
$GO mod tidy >&2
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$V -X k8s.io/component-base/version.gitMajor=1"
ldflags="$ldflags -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=$V"
mkdir -p "$work/bin"
CGO_ENABLED=0 $GO build -trimpath -ldflags "$ldflags" -o "$work/bin/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kubectl
log "building crictl $CRICTL"
CGO_ENABLED=0 GOBIN="$work/bin" $GO install -trimpath -ldflags "-s -w" "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL"
# Publish all binaries at once: a half-built cache is never taken for a whole one.
rm -rf "$BIN.new" && mv "$work/bin" "$BIN.new" && rm -rf "$BIN" && mv "$BIN.new" "$BIN"
log "done: $BIN"
echo "$BIN"
}
main "$@"; exit
