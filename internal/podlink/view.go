package podlink

import (
	"context"
	"slices"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/parking"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// LinkView is one pod link and its state.
type LinkView struct {
	ID    string
	Ends  [2]store.LinkEnd
	State State
	// Settings are the link's run-time settings (nil: none).
	Settings *store.Settings
	// Added: the administrator added the link (store.LinkRecord.Added).
	Added bool `json:",omitempty"`
}

// ViewLinks reads every pod link from the store and checks each against
// the parking namespace (nil when there is none) to derive its state.
func ViewLinks(ctx context.Context, st store.Topology, parkNS ns.NetNS) ([]LinkView, error) {
	recs, err := st.Links(ctx)
	if err != nil {
		return nil, err
	}
	var x *Executor
	if parkNS != nil {
		if x, err = NewExecutor(nil, parkNS, nil); err != nil {
			return nil, err
		}
		defer x.Close()
	}
	views := make([]LinkView, 0, len(recs))
	for _, r := range recs {
		obs := Observation{}
		if x != nil {
			obs = x.Observe(r)
		}
		views = append(views, LinkView{ID: r.ID, Ends: r.Ends, State: StateOf(r, obs), Settings: r.Settings, Added: r.Added})
	}
	slices.SortFunc(views, func(a, b LinkView) int { return strings.Compare(a.ID, b.ID) })
	return views, nil
}

// OpenParkingOf opens the parking namespace recorded in st, or returns nil
// when there is none.
func OpenParkingOf(ctx context.Context, st store.Topology) ns.NetNS {
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
