package podlink

import (
	"context"
	"errors"
	"fmt"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// Executor takes the kernel steps of pod-link decisions in a node's
// parking namespace. Every kernel call of the pod-link code goes through
// it (this file), through pkg/link.
type Executor struct {
	k    *link.Kernel
	park *link.Parking
	undo *Undo
	// plugs are the stitched pairs of parked ends to bring up once every
	// end is made (see PlugIn).
	plugs [][2]int
}

// NewExecutor opens the parking namespace parkNS for steps, through k's
// handle in it (nil k: a handle of the executor's own). With undo, the
// steps it takes push their inverse there, and undo owns the executor:
// it is closed after the undo steps have run (Undo.Finish). Without, the
// caller closes it. The caller still owns parkNS, and must close it after
// the executor.
func NewExecutor(k *link.Kernel, parkNS ns.NetNS, undo *Undo) (*Executor, error) {
	park, err := link.OpenParking(k, parkNS)
	if err != nil {
		return nil, err
	}
	x := &Executor{k: k, park: park, undo: undo}
	if undo != nil {
		undo.Own(x.Close)
	}
	return x, nil
}

// WithUndo returns an executor that takes steps through x's handle and
// pushes their inverse on u. x still owns the handle: u does not, and x
// must stay open until u has finished.
func (x *Executor) WithUndo(u *Undo) *Executor {
	return &Executor{k: x.k, park: x.park, undo: u}
}

// Close releases the executor's netlink handle.
func (x *Executor) Close() { x.park.Close() }

// ObserveParked looks at whether each end the record says is made has its
// parked netdev: one lookup per such end, none for the others.
func (x *Executor) ObserveParked(rec *store.LinkRecord) Observation {
	obs := Observation{Parking: true}
	for i, e := range rec.Ends {
		if e.Attachment != nil {
			obs.Ends[i].Parked = x.park.Has(e.Parked, e.ParkedIndex)
		}
	}
	return obs
}

// Observe looks at what StateOf needs of rec, and no more: the parked
// netdevs, then the stitch of two present ends, or of a lone end that was
// never joined (to a tunnel?).
func (x *Executor) Observe(rec *store.LinkRecord) Observation {
	return x.observeStitch(rec, x.ObserveParked(rec), x.park.Stitched)
}

// ObserveWith is Observe with whether each parked netdev is there taken
// from devs, one listing of the namespace's netdevs (Counters), instead of
// one request per end: for views of many links at once.
func (x *Executor) ObserveWith(rec *store.LinkRecord, devs map[int]link.NetdevCounters) Observation {
	obs := Observation{Parking: true}
	for i, e := range rec.Ends {
		if e.Attachment != nil {
			d, ok := devs[e.ParkedIndex]
			obs.Ends[i].Parked = ok && d.Name == e.Parked
		}
	}
	// Present ends were just listed: their stitch needs no lookup first.
	return x.observeStitch(rec, obs, x.park.StitchedListed)
}

// observeStitch adds to obs, whose parked netdevs are known, the stitch
// StateOf needs, read with stitched.
func (x *Executor) observeStitch(rec *store.LinkRecord, obs Observation, stitched func(index int) (int, error)) Observation {
	a, b := rec.Ends[0], rec.Ends[1]
	pa, pb := Present(&a, obs.Ends[0]), Present(&b, obs.Ends[1])
	switch {
	case pa && pb && a.Declared && b.Declared:
		obs.Ends[0].StitchedTo, _ = stitched(a.ParkedIndex)
	case rec.Joined:
	case pa != pb:
		i := 0
		if pb {
			i = 1
		}
		if to, err := stitched(rec.Ends[i].ParkedIndex); err == nil && to != 0 {
			obs.Ends[i].StitchedTo, obs.Ends[i].ToTunnel = to, x.park.Kind(to) == "vxlan"
		}
	}
	return obs
}

// ObserveMany looks at many records at once, for run-time changes to
// many links (ratchetctl link --all-of): whether each end's parked netdev
// is there, from one dump of the namespace's netdevs, and the stitch of a
// lone end that was never joined (is it on a tunnel: remote?). It does
// not look at the stitch of two present ends, so the states it gives do
// not tell up from broken.
func (x *Executor) ObserveMany(recs []*store.LinkRecord) ([]Observation, error) {
	devs, err := x.park.Netdevs()
	if err != nil {
		return nil, err
	}
	obs := make([]Observation, len(recs))
	for n, rec := range recs {
		o := Observation{Parking: true}
		for i, e := range rec.Ends {
			if e.Attachment != nil {
				d, ok := devs[e.ParkedIndex]
				o.Ends[i].Parked = ok && d.Name == e.Parked
			}
		}
		pa, pb := Present(&rec.Ends[0], o.Ends[0]), Present(&rec.Ends[1], o.Ends[1])
		if pa != pb && !rec.Joined {
			i := 0
			if pb {
				i = 1
			}
			if to, err := x.park.Stitched(rec.Ends[i].ParkedIndex); err == nil && to != 0 {
				o.Ends[i].StitchedTo, o.Ends[i].ToTunnel = to, devs[to].Kind == "vxlan"
			}
		}
		obs[n] = o
	}
	return obs, nil
}

// VethFunc describes end's veth (its interface in the pod, its parked end
// in the executor's namespace), to make or to verify.
type VethFunc func(end int) (*link.Veth, error)

// Apply takes the kernel steps of d, decided from rec: it makes ends
// (recording their parked netdevs in d.Next), stitches, queues plugs for
// PlugIn, unplugs, and verifies. Record steps are the caller's. A step
// that fails stops it; with an Undo, what it did is undone by the undo.
func (x *Executor) Apply(ctx context.Context, rec *store.LinkRecord, d *Decision, veth VethFunc) error {
	plugged := false
	for _, s := range d.Steps {
		if s.Action == Plug {
			// Both ends' plugs are one pair, the first end's (the one this
			// operation made) first: PlugIn unplugs the other's again
			// should the operation be undone.
			if !plugged {
				x.plugs = append(x.plugs, [2]int{d.Next.Ends[s.End].ParkedIndex, d.Next.Ends[1-s.End].ParkedIndex})
				plugged = true
			}
			continue
		}
		if err := x.apply(ctx, rec, d, s, veth); err != nil {
			return err
		}
	}
	return nil
}

func (x *Executor) apply(ctx context.Context, rec *store.LinkRecord, d *Decision, s Step, veth VethFunc) error {
	next := &d.Next
	switch s.Action {
	case UnplugStale:
		return x.park.SetUp(rec.Ends[s.End].ParkedIndex, false)
	case MakeEnd:
		v, err := veth(s.End)
		if err != nil {
			return err
		}
		return x.makeEnd(ctx, v, &next.Ends[s.End])
	case Stitch:
		return x.park.Stitch(next.Ends[s.End].ParkedIndex, next.Ends[1-s.End].ParkedIndex)
	case Unplug:
		return x.park.SetUp(next.Ends[s.End].ParkedIndex, false)
	case VerifyEnd, VerifyJoined:
		v, err := veth(s.End)
		if err != nil {
			return err
		}
		return x.verify(ctx, v, &next.Ends[s.End], &next.Ends[1-s.End], s.Action == VerifyJoined, next.Pulled())
	case Tunnel:
		return fmt.Errorf("pod link %s: tunnels are the node agent's", rec.ID)
	case Pull, Restore:
		return x.setUp(next.Ends[s.End].ParkedIndex, s.Action == Restore)
	case Impair:
		return x.impair(rec, d, s.End)
	case VerifyImpairment:
		err := x.park.VerifyImpairment(next.Ends[s.End].ParkedIndex, link.ImpairmentOf(next.Toward(s.End)))
		var mm *link.MismatchError
		if errors.As(err, &mm) {
			return &MismatchError{Err: fmt.Errorf("%s: run-time settings of link %s: %w", next.Ends[s.End].IfName, rec.ID, err)}
		}
		return err
	case Mirror:
		return x.mirror(rec, d, s.End)
	case VerifyMirror:
		err := x.park.VerifyMirror(next.Ends[s.End].ParkedIndex, d.Collector)
		var mm *link.MismatchError
		if errors.As(err, &mm) {
			return &MismatchError{Err: fmt.Errorf("%s: mirror of link %s to %s: %w", next.Ends[s.End].IfName, rec.ID, next.MirrorTo(), err)}
		}
		return err
	}
	return nil // record steps: the caller's
}

// setUp sets a parked netdev up or down; with an undo, the undo sets it
// back.
func (x *Executor) setUp(index int, up bool) error {
	if err := x.park.SetUp(index, up); err != nil {
		return err
	}
	if x.undo != nil {
		x.undo.Push(fmt.Sprintf("set parked ifindex %d up=%v", index, !up), func() error { return x.park.SetUp(index, !up) })
	}
	return nil
}

// impair gives end's parked netdev the impairment d.Next asks toward its
// pod (none: cleared). With an undo, the undo gives it back rec's, unless
// the decision made the end (its undo removes it).
func (x *Executor) impair(rec *store.LinkRecord, d *Decision, end int) error {
	index := d.Next.Ends[end].ParkedIndex
	if err := x.park.Impair(index, link.ImpairmentOf(d.Next.Toward(end))); err != nil {
		return fmt.Errorf("pod link %s, toward %s: %w", rec.ID, d.Next.Ends[end].Pod, err)
	}
	if x.undo != nil && !d.Has(MakeEnd, end) {
		old := link.ImpairmentOf(rec.Toward(end))
		x.undo.Push(fmt.Sprintf("restore the impairment of parked ifindex %d", index), func() error { return x.park.Impair(index, old) })
	}
	return nil
}

// mirror makes end's parked netdev mirror to d.Collector, or stops its
// mirror when that is 0. With an undo, the undo gives it back the mirror
// it had (none, if its target was gone), unless the decision made the end.
func (x *Executor) mirror(rec *store.LinkRecord, d *Decision, end int) error {
	index := d.Next.Ends[end].ParkedIndex
	old := 0
	if x.undo != nil && !d.Has(MakeEnd, end) {
		var err error
		if old, err = x.park.Mirrored(index); err != nil {
			return err
		}
	}
	var err error
	if d.Collector == 0 {
		err = x.park.Unmirror(index)
	} else {
		err = x.park.Mirror(index, d.Collector)
	}
	if err != nil {
		return fmt.Errorf("pod link %s, end %s: %w", rec.ID, d.Next.Ends[end].Pod, err)
	}
	if x.undo != nil && !d.Has(MakeEnd, end) {
		x.undo.Push(fmt.Sprintf("restore the mirror of parked ifindex %d", index), func() error {
			if old > 0 {
				return x.park.Mirror(index, old)
			}
			return x.park.Unmirror(index)
		})
	}
	return nil
}

// makeEnd creates v, its parked end down, and records it in end.
func (x *Executor) makeEnd(ctx context.Context, v *link.Veth, end *store.LinkEnd) error {
	v.B.NS, v.B.Down = x.park.NS, true
	if err := v.Create(ctx, x.k); err != nil {
		return err
	}
	if x.undo != nil {
		x.undo.Push("remove pod link "+v.A.Name, func() error { return v.Remove(context.WithoutCancel(ctx), x.k) })
	}
	end.Parked, end.ParkedIndex = v.B.Name, v.B.Index
	return nil
}

// PlugIn brings up both parked ends of every pair stitched since the last
// PlugIn (the ADD's), once all of its ends are made. Their pod interfaces
// get their carrier at once; the kernel's reaction to it (IPv6 address
// configuration, which walks the pod's whole IPv6 routing table for every
// interface) runs in its linkwatch worker. Done link by link in the middle
// of the ADD, that work would compete with the ADD's own requests for the
// RTNL lock (docs/performance.md has the figures). A failed ADD does not
// flap its peers' cables either.
func (x *Executor) PlugIn() error {
	plugs := x.plugs
	x.plugs = nil
	for _, pair := range plugs {
		mine, other := pair[0], pair[1]
		if err := x.park.SetUp(mine, true); err != nil {
			return err
		}
		if err := x.park.SetUp(other, true); err != nil {
			return err
		}
		// Mine goes with its veth if the ADD is undone; the peer's end is
		// unplugged again.
		if x.undo != nil {
			x.undo.Push(fmt.Sprintf("unplug parked ifindex %d", other), func() error { return x.park.SetUp(other, false) })
		}
	}
	return nil
}

// verify checks end's veth v; with joined, its parked end must be up
// (unless pulled) and stitched to other's.
func (x *Executor) verify(ctx context.Context, v *link.Veth, end, other *store.LinkEnd, joined, pulled bool) error {
	// A pulled cable's parked end is down, as intended.
	v.B = link.Endpoint{NS: x.park.NS, Name: end.Parked, Down: !joined || pulled}
	if err := v.Verify(ctx, x.k); err != nil {
		return &MismatchError{Err: err}
	}
	if !joined {
		return nil
	}
	to, err := x.park.Stitched(end.ParkedIndex)
	if err != nil {
		return err
	}
	if to != other.ParkedIndex {
		return &MismatchError{Err: fmt.Errorf("%s: not joined to %s's %s", end.IfName, other.Pod, other.IfName)}
	}
	return nil
}

// MismatchError says that the kernel does not match the record (CHECK).
type MismatchError struct{ Err error }

func (e *MismatchError) Error() string { return e.Err.Error() }

func (e *MismatchError) Unwrap() error { return e.Err }

// ParkedCount returns how many marked netdevs the parking namespace holds.
func (x *Executor) ParkedCount() (int, error) { return x.park.Count() }

// Sweep deletes every marked parked netdev that keep rejects: leftovers of
// a crash. It returns how many it deleted.
func (x *Executor) Sweep(keep func(alias string) bool) (int, error) {
	return x.park.RemoveUnless(keep)
}
