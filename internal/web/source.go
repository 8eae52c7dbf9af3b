package web

import (
	"context"
	"time"

	"github.com/ratchet-cni/ratchet/internal/labop"
	"github.com/ratchet-cni/ratchet/internal/podlink"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// StoreSource reads the node's local store and its parking namespace, as
// `ratchetctl links --stats` does: one store read and one dump of the
// parking namespace's netdevs per snapshot.
type StoreSource struct {
	// Dir is the local store's directory (store.dir).
	Dir string
	// Node is the node's name, shown on the page.
	Node string
	// LockWait bounds the wait for the node lock (default 2 s): a
	// snapshot that cannot be had is skipped, the next tick tries again.
	LockWait time.Duration
}

// Snapshot reads the pods and the links' views (labop.View): the node
// lock is held only while the store is read, at most LockWait is waited
// for it, and the parking namespace's counters are read after it is
// released, so that a page left open never holds an ADD or DEL up.
func (s StoreSource) Snapshot(ctx context.Context) (*Snapshot, error) {
	wait := s.LockWait
	if wait <= 0 {
		wait = 2 * time.Second
	}
	var snap *Snapshot
	err := labop.View(ctx, s.Dir, wait, true, func(lab *labop.Lab) error {
		snap = SnapshotOf(s.Node, lab.Pods, lab.Links)
		return nil
	})
	return snap, err
}

// SnapshotOf builds a snapshot from the store's pods and the links' views.
func SnapshotOf(node string, pods []*store.PodRecord, views []podlink.LinkView) *Snapshot {
	return &Snapshot{Node: node, Document: labop.DocumentOf(pods, views)}
}
