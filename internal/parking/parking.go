// Package parking finds (and on first use makes) a node's parking
// namespace: where the far end of every pod link waits for its peer, and
// where two ends, or an end and a tunnel to another node, are stitched
// into one cable. The plugin and the node agent share it through the local
// store, which records its path.
package parking

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/crypto/blake2b"

	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// MetaKey is the store's meta key for the parking namespace's path.
const MetaKey = "parking-netns"

// IDKey is the store's meta key for the identity (link.NetnsID, as
// FormatID writes it) of the parking namespace the plugin made: ratchetd
// compares it with what it finds at the recorded path, which tells a
// namespace it cannot see (a mount that did not propagate to it) from the
// one the plugin uses.
const IDKey = "parking-netns-id"

// ErrNone says that the node has no parking namespace yet.
var ErrNone = errors.New("no parking namespace")

// Name is the name of the parking namespace a store in storeDir makes:
// "ratchet-park-" and the first 4 bytes, in hex, of the BLAKE2b-256 digest
// of storeDir (b2sum -l 256), one per store directory.
func Name(storeDir string) string {
	sum := blake2b.Sum256([]byte(storeDir))
	return "ratchet-park-" + hex.EncodeToString(sum[:4])
}

// Open opens the parking namespace of the store in storeDir. With create,
// it is made on first use: a named netns (one per store directory) with
// IPv6 off, so parked ends never speak on their own. Errors reading the
// store wrap store.ErrUnavailable.
func Open(ctx context.Context, st store.Topology, storeDir string, create bool) (ns.NetNS, error) {
	path, err := st.Meta(ctx, MetaKey)
	if err != nil {
		return nil, err
	}
	if path != "" {
		park, err := ns.GetNS(path)
		if err == nil {
			if create {
				// A store from before the identity was recorded: record it
				// now, as the plugin sees it, for ratchetd to compare with.
				if err := recordID(ctx, st, park); err != nil {
					park.Close()
					return nil, err
				}
			}
			return park, nil
		}
		var gone ns.NSPathNotExistErr
		if !create && errors.As(err, &gone) {
			return nil, ErrNone // recorded before a reboot: gone with it
		}
		if !create {
			return nil, err
		}
	}
	if !create {
		return nil, ErrNone
	}
	name := Name(storeDir)
	path = link.NetnsDir + "/" + name
	park, err := ns.GetNS(path)
	if err != nil {
		if path, err = link.CreateNamedNetns(name); err != nil {
			return nil, fmt.Errorf("create parking netns %s: %w", name, err)
		}
		if !visibleToParent(path) {
			_ = link.DeleteNamedNetns(name)
			return nil, fmt.Errorf("the parking netns pinned at %s is not visible to the process that ran ratchet: "+
				"ratchet runs in a mount namespace of its own (as under `ip netns exec`), where the pin would vanish with it; "+
				"run the plugin in the host's mount namespace (a runtime does; by hand, `nsenter --net=...`)", path)
		}
		if park, err = ns.GetNS(path); err != nil {
			return nil, err
		}
		for _, key := range []string{"net/ipv6/conf/all/disable_ipv6", "net/ipv6/conf/default/disable_ipv6"} {
			_ = link.WriteSysctl(park, key, "1")
		}
	}
	if err := st.PutMeta(ctx, MetaKey, path); err != nil {
		park.Close()
		return nil, err
	}
	if err := recordID(ctx, st, park); err != nil {
		park.Close()
		return nil, err
	}
	return park, nil
}

// recordID records park's identity under IDKey unless it is there already.
func recordID(ctx context.Context, st store.Topology, park ns.NetNS) error {
	id, err := link.IDOf(park)
	if err != nil {
		return err
	}
	want := FormatID(id)
	cur, err := st.Meta(ctx, IDKey)
	if err != nil || cur == want {
		return err
	}
	return st.PutMeta(ctx, IDKey, want)
}

// FormatID is how IDKey records a namespace's identity: "DEV:INODE".
func FormatID(id link.NetnsID) string { return fmt.Sprintf("%d:%d", id.Dev, id.Ino) }

// visibleToParent reports whether the bind mount at path shows in the mount
// table of the process that ran this one (the runtime, for a plugin): the
// pin must outlive this process and be found by the next one. Under
// `ip netns exec` it does not, as that gives its command a mount namespace
// of its own whose mounts do not propagate back. When the parent's table
// cannot be read, it cannot tell, and says yes.
func visibleToParent(path string) bool {
	dir, err := filepath.EvalSymlinks(filepath.Dir(path))
	if err != nil {
		return true
	}
	want := filepath.Join(dir, filepath.Base(path))
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", os.Getppid()))
	if err != nil {
		return true
	}
	for _, line := range strings.Split(string(data), "\n") {
		// The fifth field is the mount point.
		if f := strings.Fields(line); len(f) > 4 && f[4] == want {
			return true
		}
	}
	return false
}
