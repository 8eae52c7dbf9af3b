package podlink

import (
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// Traffic is what a link carried in one direction, as the parked ends on
// this node counted it.
type Traffic struct {
	Bytes   uint64 `json:"bytes"`
	Packets uint64 `json:"packets"`
	Drops   uint64 `json:"drops"`
	Errors  uint64 `json:"errors"`
}

// LinkStats is a link's counters on this node. Toward[i] is the traffic
// toward end i's pod; CarrierChanges[i] counts the carrier of end i's
// parked netdev going on and off. Either is nil when this node cannot
// count it (the end's pod is gone, on another node, or its parked netdev
// is not the recorded one).
//
// The traffic toward end i leaves end i's parked netdev (its transmit
// counters: it is what end i's pod received through the link), and
// arrived on the other end's parked netdev (its receive counters: what
// the other pod sent). Toward[i] counts bytes and packets where they leave
// (end i's transmit counters) when end i is on this node, else where they
// arrive (the other end's receive counters: toward a tunnel, or toward a
// pod not there); its drops and errors are both ends' on the way (end i's
// transmit and the other end's receive). Counters start at zero when the
// parked netdev is made (when its pod's ADD makes the end).
//
// The parked end's carrier changes stand for the cable's events: a veth
// has carrier only while both its sides are up, so each pull, plug, pod
// start or end flips the parked end's carrier too, and it is read here
// without entering the pod.
type LinkStats struct {
	Toward         [2]*Traffic `json:"toward"`
	CarrierChanges [2]*uint32  `json:"carrierChanges"`
}

// StatsOf derives each record's counters from one listing of the parking
// namespace's netdevs (link.Parking.Counters): one dump for every link.
func StatsOf(recs []*store.LinkRecord, devs map[int]link.NetdevCounters) []LinkStats {
	out := make([]LinkStats, len(recs))
	for n, rec := range recs {
		var here [2]*link.Counters
		for i, e := range rec.Ends {
			if e.Attachment == nil || e.ParkedIndex == 0 {
				continue
			}
			if d, ok := devs[e.ParkedIndex]; ok && d.Name == e.Parked {
				c := d.Counters
				here[i] = &c
				cc := c.CarrierChanges
				out[n].CarrierChanges[i] = &cc
			}
		}
		for i := range 2 {
			mine, other := here[i], here[1-i]
			if mine == nil && other == nil {
				continue
			}
			t := &Traffic{}
			if mine != nil {
				t.Bytes, t.Packets = mine.TxBytes, mine.TxPackets
				t.Drops, t.Errors = mine.TxDropped, mine.TxErrors
			} else {
				t.Bytes, t.Packets = other.RxBytes, other.RxPackets
			}
			if other != nil {
				t.Drops += other.RxDropped
				t.Errors += other.RxErrors
			}
			out[n].Toward[i] = t
		}
	}
	return out
}

// Counters lists the counters of the executor's parking namespace, in one
// dump, for StatsOf.
func (x *Executor) Counters() (map[int]link.NetdevCounters, error) { return x.park.Counters() }
