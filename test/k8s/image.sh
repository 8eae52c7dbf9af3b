#!/usr/bin/env bash
# Writes a one-layer image archive in the `docker save` format (what
# `ctr images import` and `podman load` read) from a root filesystem, with no
# registry and no base image: a layer tarball, an image config naming its
# digest, and a manifest.json tagging the config.
#
# usage: image.sh ROOTFS REF OUT.tar CONFIG_JSON
#   CONFIG_JSON is the image's "config" object, e.g.
#   '{"Entrypoint":["/bin/ratchetctl"]}'
# The archive is the same bytes for the same rootfs (fixed mtimes, owners
# and order), so a re-import is a no-op for containerd.
set -euo pipefail
[ $# -eq 4 ] || { echo "usage: $0 ROOTFS REF OUT.tar CONFIG_JSON" >&2; exit 2; }
rootfs=$1 ref=$2 out=$3 config=$4
[ -d "$rootfs" ] || { echo "image.sh: $rootfs: not a directory" >&2; exit 2; }
jq -e 'type == "object"' <<<"$config" >/dev/null || { echo "image.sh: CONFIG_JSON is not a JSON object" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/image.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/img/layer"
tar --numeric-owner --owner=0 --group=0 --mtime=2020-01-01 --sort=name \
  -C "$rootfs" -cf "$work/img/layer/layer.tar" .
layer=$(sha256sum "$work/img/layer/layer.tar" | cut -d' ' -f1)
jq -cn --argjson config "$config" --arg diff "sha256:$layer" '{
  architecture: "amd64", os: "linux", created: "2020-01-01T00:00:00Z",
  config: ({Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], WorkingDir: "/"} + $config),
  rootfs: {type: "layers", diff_ids: [$diff]}
}' > "$work/config.json"
cfg=$(sha256sum "$work/config.json" | cut -d' ' -f1)
mv "$work/config.json" "$work/img/$cfg.json"
jq -cn --arg cfg "$cfg.json" --arg ref "$ref" '[{Config: $cfg, RepoTags: [$ref], Layers: ["layer/layer.tar"]}]' \
  > "$work/img/manifest.json"
tar --numeric-owner --owner=0 --group=0 --mtime=2020-01-01 --sort=name -C "$work/img" -cf "$out" .
