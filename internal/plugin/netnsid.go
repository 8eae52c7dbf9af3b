package plugin

import (
	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"

	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// nsIDOf returns the identity of n to record with its path, or nil when it
// cannot be read (the record then falls back to trusting the path, as
// records of older versions do).
func nsIDOf(n ns.NetNS) *store.NetnsID {
	id, err := link.IDOf(n)
	if err != nil {
		return nil
	}
	return &store.NetnsID{Dev: id.Dev, Ino: id.Ino}
}

// nsIDsOf returns the identities of ns, nil if any cannot be read: the
// list pairs with a list of paths by position.
func nsIDsOf(nss []ns.NetNS) []store.NetnsID {
	ids := make([]store.NetnsID, 0, len(nss))
	for _, n := range nss {
		id := nsIDOf(n)
		if id == nil {
			return nil
		}
		ids = append(ids, *id)
	}
	return ids
}

// openRecorded opens a namespace path read from the store only while it
// still names the namespace recorded with it (want; nil in records of
// older versions). A path like /proc/<pid>/ns/net names whatever
// namespace the pid's next owner is in, the node's own included: such a
// namespace, like one that is gone, is reported as gone (nil). With
// notOwn, the plugin's own namespace is refused too whatever was
// recorded: a pod's namespace never is it (ADD refuses it).
func openRecorded(path string, want *store.NetnsID, notOwn bool) ns.NetNS {
	if path == "" {
		return nil
	}
	n, err := ns.GetNS(path)
	if err != nil {
		return nil
	}
	got := nsIDOf(n)
	if got == nil || want != nil && *got != *want || notOwn && isOwnNetns(*got) {
		n.Close()
		return nil
	}
	return n
}

// isOwnNetns reports whether id is the plugin process's own namespace.
func isOwnNetns(id store.NetnsID) bool {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &st); err != nil {
		return true // unknown: refusing is the safe answer
	}
	return id == store.NetnsID{Dev: uint64(st.Dev), Ino: st.Ino}
}

// peerNetnsIDs returns the identities of the peer namespaces, in the order
// of peerNetns.
func (s staticLinks) peerNetnsIDs() []store.NetnsID {
	var peers []ns.NetNS
	for _, l := range s {
		peers = append(peers, l.peers...)
	}
	return nsIDsOf(peers)
}
