// Package podlink owns a pod link's state machine. A pod link's record
// (store.LinkRecord) says what the two pods declared and which of their
// ends were made; an Observation says what the kernel shows of the two
// parked ends. From the two, the pure functions of this package say the
// link's State (as `ratchetctl links` shows it) and the Steps that move it
// on for each event: a pod's ADD, its DEL or GC, a CHECK, and the node
// agent's peer-registered and peer-gone. One Executor (exec.go) applies
// those steps to the parking namespace through pkg/link, with an Undo
// stack for the ADD.
//
// How pod links work. Each pod's end of a link is a veth pair: the
// interface in the pod, and a "parked" end in a node-local parking
// namespace. A pod's ADD always makes its own ends, so its interfaces exist
// when ADD returns, whatever its peers are doing. When both pods of a link
// have declared it and both are present, their parked ends are stitched
// back to back with tc redirects, which moves nothing. A parked end is down
// while its peer is missing, so the pod's interface has no carrier: an
// unplugged cable. When a pod goes, its veth pairs go with it; its peers
// keep their interfaces (same name, same ifindex) with carrier down until
// it comes back and is stitched again. A lone end whose peer is on another
// node is stitched by the node agent to a VXLAN tunnel instead.
package podlink

import (
	"github.com/ratchet-cni/ratchet/internal/store"
)

// State is a pod link's state, as `ratchetctl links` shows it. The names
// are user-visible (README, "Pod links"): do not change them.
type State string

// Link states.
const (
	// StateUp: both ends are there and stitched together.
	StateUp State = "up"
	// StatePending: one pod declares the link; the other has not (yet).
	StatePending State = "pending"
	// StateParked: the link was up; one pod is gone and the other's end
	// waits, carrier down, for it to come back.
	StateParked State = "parked"
	// StateRemote: the peer is on another node, and this node's end is
	// stitched to the tunnel to it (multi-node; see docs/multinode.md).
	StateRemote State = "remote"
	// StateBroken: the store and the kernel disagree (an end's parked
	// interface is missing, or two present ends are not stitched).
	StateBroken State = "broken"
	// StatePulled: the cable is pulled (`ratchetctl link down`): the
	// record says so, and both parked ends stay down, the pods'
	// interfaces without carrier, until `ratchetctl link up`, across
	// restarts of either pod.
	StatePulled State = "pulled"
	// StateImpaired: the link is up, with a run-time impairment (`ratchetctl
	// link set`) on one or both directions.
	StateImpaired State = "impaired"
)

// EndObs is what the kernel shows of one end's parked netdev. Only what
// the caller asked the Executor to look at is filled in: an ADD looks at
// Parked alone (one lookup, as many as it needs); CHECK and the link view
// look at the stitch too.
type EndObs struct {
	// Parked: a netdev with the recorded name is at the recorded index (an
	// index can be reused by a later netdev).
	Parked bool
	// StitchedTo is the ifindex the parked netdev redirects to, 0 if none.
	StitchedTo int
	// ToTunnel: StitchedTo is a VXLAN tunnel (the agent's, to another node).
	ToTunnel bool
}

// Observation is what the kernel shows of a link's two ends, in the order
// of the record's Ends. Parking says whether the node has a parking
// namespace at all: without one, no end can be there.
type Observation struct {
	Ends    [2]EndObs
	Parking bool
	// Collector is the parked ifindex of the link's mirror target when the
	// record has one and its end is here (ObserveCollector); 0 otherwise.
	Collector int
}

// Recorded reports whether the record says the end's pod holds its
// interface now: it was made by an attachment that has not been released.
// The kernel may disagree (Present).
func Recorded(e *store.LinkEnd) bool { return e.Attachment != nil && e.ParkedIndex != 0 }

// Present reports whether the end's pod holds its interface now: the
// record says so and its parked netdev is there.
func Present(e *store.LinkEnd, o EndObs) bool { return e.Attachment != nil && o.Parked }

// Joinable reports whether other is an end this node can stitch to: its
// pod declares the link and is present.
func Joinable(other *store.LinkEnd, o EndObs) bool { return other.Declared && Present(other, o) }

// StateOf derives a link's state from its record and what the kernel
// shows of it. The run-time settings are the record's, intended: a pulled
// cable is pulled, whatever else the link is doing, unless the kernel
// disagrees with the record (broken); an up link with an impairment is
// impaired.
func StateOf(r *store.LinkRecord, obs Observation) State {
	s := baseState(r, obs)
	switch {
	case s == StateBroken:
		return s
	case r.Pulled():
		return StatePulled
	case s == StateUp && (r.Toward(0) != nil || r.Toward(1) != nil):
		return StateImpaired
	}
	return s
}

// Remote reports whether the link's end on this node is stitched to a
// tunnel to its peer on another node, whatever its run-time settings say:
// such an end is the node agent's.
func Remote(r *store.LinkRecord, obs Observation) bool { return baseState(r, obs) == StateRemote }

// baseState is the link's state from its ends alone.
func baseState(r *store.LinkRecord, obs Observation) State {
	present := 0
	for i, e := range r.Ends {
		if e.Attachment == nil {
			continue
		}
		if !obs.Parking || !obs.Ends[i].Parked {
			return StateBroken
		}
		present++
	}
	a, b := r.Ends[0], r.Ends[1]
	switch {
	case present == 2 && a.Declared && b.Declared:
		if obs.Ends[0].StitchedTo != b.ParkedIndex {
			return StateBroken
		}
		return StateUp
	case r.Joined:
		return StateParked
	case present == 1:
		// A lone end whose cable the node agent plugged into a tunnel.
		o := obs.Ends[0]
		if a.Attachment == nil {
			o = obs.Ends[1]
		}
		if o.StitchedTo != 0 && o.ToTunnel {
			return StateRemote
		}
	}
	return StatePending
}

// forget marks an end gone: its pod no longer holds an interface.
func forget(e *store.LinkEnd) { e.Attachment, e.Parked, e.ParkedIndex = nil, "", 0 }

// declaredOrPresent reports whether a record still has a reason to exist:
// one of its pods declares it or holds its end.
func declaredOrPresent(rec *store.LinkRecord) bool {
	for _, e := range rec.Ends {
		if e.Declared || e.Attachment != nil {
			return true
		}
	}
	return false
}
