package labop

import (
	"context"
	"fmt"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/parking"
	"github.com/ratchet-cni/ratchet/internal/podlink"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// Lab is the node's pods and pod links as its local store and parking
// namespace show them at one moment.
type Lab struct {
	Pods  []*store.PodRecord
	Links []podlink.LinkView
	// ParkingPath is the parking namespace's path ("" before the node's
	// first pod link).
	ParkingPath string
	// Parking is the parking namespace, open while View's fn runs (nil:
	// none yet).
	Parking ns.NetNS
}

// StoreError is View's failure to open the local store; callers name the
// directory by their own flag.
type StoreError struct {
	Dir string
	Err error
}

func (e *StoreError) Error() string { return fmt.Sprintf("store %s: %v", e.Dir, e.Err) }
func (e *StoreError) Unwrap() error { return e.Err }

// View reads the node's lab from the local store in dir, waiting at most
// wait for the node lock (0: as long as it takes), with each link's
// counters when withStats, and calls fn with it. The lock is held until
// fn returns, so that no ADD or DEL changes the lab while fn reads the
// kernel (`ratchetctl links`, events, the topology page, the Kubernetes
// status all see records and netdevs of the same moment).
func View(ctx context.Context, dir string, wait time.Duration, withStats bool, fn func(*Lab) error) error {
	st, err := store.OpenLocalWithin(ctx, dir, wait)
	if err != nil {
		return &StoreError{Dir: dir, Err: err}
	}
	defer st.Close()
	lab := &Lab{}
	if lab.Pods, err = st.Pods(ctx); err != nil {
		return err
	}
	lab.ParkingPath, _ = st.Meta(ctx, parking.MetaKey)
	if lab.Parking = podlink.OpenParkingOf(ctx, st); lab.Parking != nil {
		defer lab.Parking.Close()
	}
	view := podlink.ViewLinks
	if withStats {
		view = podlink.ViewLinkStats
	}
	if lab.Links, err = view(ctx, st, lab.Parking); err != nil {
		return err
	}
	return fn(lab)
}
