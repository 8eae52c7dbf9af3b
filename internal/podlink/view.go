package podlink

import (
	"context"
	"slices"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/parking"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/pkg/link"
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
	// Stats are the link's counters on this node; nil unless asked for
	// (ViewLinkStats).
	Stats *LinkStats `json:",omitempty"`
	// Remote: the link's end on this node is stitched to a tunnel toward
	// its peer on another node (Remote), whatever its settings say.
	Remote bool `json:",omitempty"`
}

// ViewLinks reads every pod link from the store and checks each against
// the parking namespace (nil when there is none) to derive its state.
func ViewLinks(ctx context.Context, st store.Topology, parkNS ns.NetNS) ([]LinkView, error) {
	return viewLinks(ctx, st, parkNS, false)
}

// ViewLinkStats is ViewLinks with each link's counters (LinkStats), read
// in one dump of the parking namespace's netdevs. Without a parking
// namespace, no link has counters to read: each has empty stats.
func ViewLinkStats(ctx context.Context, st store.Topology, parkNS ns.NetNS) ([]LinkView, error) {
	return viewLinks(ctx, st, parkNS, true)
}

func viewLinks(ctx context.Context, st store.Topology, parkNS ns.NetNS, withStats bool) ([]LinkView, error) {
	recs, err := st.Links(ctx)
	if err != nil {
		return nil, err
	}
	return ViewRecords(recs, parkNS, withStats)
}

// ViewRecords is ViewLinks (withStats: ViewLinkStats) of records already
// read: a caller can read them under the node lock and release it before
// the kernel is asked, so that an ADD waits only for the read.
func ViewRecords(recs []*store.LinkRecord, parkNS ns.NetNS, withStats bool) ([]LinkView, error) {
	var (
		x   *Executor
		err error
	)
	if parkNS != nil {
		if x, err = NewExecutor(nil, parkNS, nil); err != nil {
			return nil, err
		}
		defer x.Close()
	}
	var (
		stats []LinkStats
		devs  map[int]link.NetdevCounters
	)
	if withStats {
		stats = make([]LinkStats, len(recs))
		if x != nil {
			if devs, err = x.Counters(); err != nil {
				return nil, err
			}
			stats = StatsOf(recs, devs)
		}
	}
	views := make([]LinkView, 0, len(recs))
	for n, r := range recs {
		obs := Observation{}
		switch {
		case devs != nil:
			// The counters' listing says which parked netdevs are there.
			obs = x.ObserveWith(r, devs)
		case x != nil:
			obs = x.Observe(r)
		}
		v := LinkView{ID: r.ID, Ends: r.Ends, State: StateOf(r, obs), Settings: r.Settings, Added: r.Added, Remote: Remote(r, obs)}
		if withStats {
			v.Stats = &stats[n]
		}
		views = append(views, v)
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
