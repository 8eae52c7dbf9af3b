package plugin

import (
	"context"
	"slices"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/parking"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// Link states, as `ratchetctl links` shows them.
const (
	// StateUp: both ends are there and stitched together.
	StateUp = "up"
	// StatePending: one pod declares the link; the other has not (yet).
	StatePending = "pending"
	// StateParked: the link was up; one pod is gone and the other's end
	// waits, carrier down, for it to come back.
	StateParked = "parked"
	// StateRemote: the peer is on another node, and this node's end is
	// stitched to the tunnel to it (multi-node; see docs/multinode.md).
	StateRemote = "remote"
	// StateBroken: the store and the kernel disagree (an end's parked
	// interface is missing, or two present ends are not stitched).
	StateBroken = "broken"
)

// LinkView is one pod link and its state.
type LinkView struct {
	ID    string
	Ends  [2]store.LinkEnd
	State string
}

// ViewLinks reads every pod link from the store and checks each against
// the parking namespace (nil when there is none) to derive its state.
func ViewLinks(ctx context.Context, st store.Store, parkNS ns.NetNS) ([]LinkView, error) {
	recs, err := st.Links(ctx)
	if err != nil {
		return nil, err
	}
	var park *link.Parking
	if parkNS != nil {
		if park, err = link.OpenParking(nil, parkNS); err != nil {
			return nil, err
		}
		defer park.Close()
	}
	views := make([]LinkView, 0, len(recs))
	for _, r := range recs {
		views = append(views, LinkView{ID: r.ID, Ends: r.Ends, State: stateOf(r, park)})
	}
	slices.SortFunc(views, func(a, b LinkView) int {
		if a.ID < b.ID {
			return -1
		}
		return 1
	})
	return views, nil
}

func stateOf(r *store.LinkRecord, park *link.Parking) string {
	present := 0
	for _, e := range r.Ends {
		if e.Attachment == nil {
			continue
		}
		if park == nil || !park.Has(e.Parked, e.ParkedIndex) {
			return StateBroken
		}
		present++
	}
	a, b := r.Ends[0], r.Ends[1]
	switch {
	case present == 2 && a.Declared && b.Declared:
		to, err := park.Stitched(a.ParkedIndex)
		if err != nil || to != b.ParkedIndex {
			return StateBroken
		}
		return StateUp
	case r.Joined:
		return StateParked
	case present == 1:
		// A lone end whose cable the node agent plugged into a tunnel.
		end := a
		if end.Attachment == nil {
			end = b
		}
		if to, err := park.Stitched(end.ParkedIndex); err == nil && to != 0 && park.Kind(to) == "vxlan" {
			return StateRemote
		}
	}
	return StatePending
}

// OpenParkingOf opens the parking namespace recorded in st, or returns nil
// when there is none.
func OpenParkingOf(ctx context.Context, st store.Store) ns.NetNS {
	path, err := st.Meta(ctx, parking.MetaKey)
	if err != nil || path == "" {
		return nil
	}
	n, err := ns.GetNS(path)
	if err != nil {
		return nil
	}
	return n
}
