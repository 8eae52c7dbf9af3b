package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Permission is one key range an etcd role is granted: the single key Key
// when RangeEnd is "", else [Key, RangeEnd).
type Permission struct {
	Key, RangeEnd string
	// Write: readwrite, else read only.
	Write bool
}

// NodePermissions is what node's credentials need under prefix, and no
// more: read everything under it (a node watches and reads the whole
// registry); write its own record (nodes/<node>), its own ends (the prefix
// ends/<node>/) and the shared VNI keys (vni/ and links/: allocation is a
// create-if-absent that any node may race for, so they cannot be confined
// to one node; docs/multinode.md says what that leaves open). links/ also
// holds cross-node links' run-time settings, which `ratchetctl link` on
// either end's node changes.
func NodePermissions(prefix, node string) []Permission {
	e := &Etcd{prefix: trimPrefix(prefix)}
	rng := func(key string, write bool) Permission {
		return Permission{Key: key, RangeEnd: clientv3.GetPrefixRangeEnd(key), Write: write}
	}
	return []Permission{
		rng(e.prefix+"/", false),
		{Key: e.nodeKey(node), Write: true},
		rng(e.nodeEndsDir(node), true),
		rng(e.vniDir(), true),
		rng(e.linksDir(), true),
	}
}

// NodeRole is the name of node's etcd role.
func NodeRole(node string) string { return "ratchet-node-" + node }

// GrantNode sets up etcd auth for node under prefix, through cli (a client
// of a user with the root role): the role NodeRole(node) with
// NodePermissions, and the user named node holding it, without a password:
// the node authenticates with a client certificate whose common name is
// its node name (etcd --client-cert-auth). Safe to repeat; a role that
// exists gains the permissions (several prefixes may share one etcd).
func GrantNode(ctx context.Context, cli *clientv3.Client, prefix, node string) error {
	role := NodeRole(node)
	if _, err := cli.RoleAdd(ctx, role); err != nil && !errors.Is(err, rpctypes.ErrRoleAlreadyExist) {
		return fmt.Errorf("etcd role %s: %w", role, err)
	}
	for _, p := range NodePermissions(prefix, node) {
		perm := clientv3.PermissionType(clientv3.PermRead)
		if p.Write {
			perm = clientv3.PermissionType(clientv3.PermReadWrite)
		}
		if _, err := cli.RoleGrantPermission(ctx, role, p.Key, p.RangeEnd, perm); err != nil {
			return fmt.Errorf("etcd role %s: grant %s: %w", role, p.Key, err)
		}
	}
	if _, err := cli.UserAddWithOptions(ctx, node, "", &clientv3.UserAddOptions{NoPassword: true}); err != nil && !errors.Is(err, rpctypes.ErrUserAlreadyExist) {
		return fmt.Errorf("etcd user %s: %w", node, err)
	}
	if _, err := cli.UserGrantRole(ctx, node, role); err != nil {
		return fmt.Errorf("etcd user %s: grant role %s: %w", node, role, err)
	}
	return nil
}

// trimPrefix is Config.Prefix as Open takes it.
func trimPrefix(prefix string) string {
	if prefix == "" {
		return DefaultPrefix
	}
	return strings.TrimRight(prefix, "/")
}
