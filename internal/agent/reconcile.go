package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/ratchet-cni/ratchet/internal/parking"
	"github.com/ratchet-cni/ratchet/internal/podlink"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// reconcile brings this node's tunnels in line with the registry. With
// full, it looks at every local link end, re-reads the registry, removes
// tunnels nothing wants, re-registers local ends the registry lost and
// withdraws ends of attachments gone from the node; otherwise it looks
// only at the links of the dirty ends.
//
// The plugin's ADD and DEL change the same parked ends under the local
// store's lock, so the agent takes it too, but never across a call to
// etcd: an etcd that is slow or gone must not hold up a DEL. So: read the
// registry; under the lock, note what the local ends need; unlocked,
// allocate VNIs and repair the registry; under the lock again, read the
// local ends afresh and make the tunnels.
func (a *Agent) reconcile(ctx context.Context, under *underlay, full bool, dirty map[endID]bool) error {
	if full {
		if err := a.announce(ctx, under); err != nil {
			return err
		}
		// The filter next (it then holds this node too), before any
		// tunnel: a node is let in before a tunnel to it is made.
		if err := a.syncFirewall(ctx); err != nil {
			return err
		}
	}
	view, err := a.readRegistry(ctx, full, dirty)
	if err != nil {
		return err
	}
	p, err := a.plan(ctx, view, full, dirty)
	if err != nil {
		return err
	}
	if !full {
		// A full read took every link's settings.
		for _, id := range p.remote {
			s, _, err := a.reg.LinkSettings(ctx, id)
			if err != nil {
				return err
			}
			view.settings[id] = s
		}
	}
	for name := range p.peerNodes {
		if _, err := view.node(ctx, a.reg, name); err != nil {
			return err
		}
	}
	for _, id := range p.needVNI {
		// Whichever agent gets here first allocates; the other one gets
		// the same VNI.
		vni, err := a.reg.AllocateVNI(ctx, id, a.cfg.VNIFirst, a.cfg.VNILast)
		if err != nil {
			return err
		}
		view.vnis[id] = vni
	}
	if full {
		if err := a.repairRegistry(ctx, p, view); err != nil {
			return err
		}
		if err := a.releaseUnused(ctx, view); err != nil {
			return err
		}
	}
	return a.apply(ctx, under, view, full, dirty)
}

// announce writes this node's record when the registry lacks it or holds
// another VTEP: a write is a change every agent sees, so an unchanged
// record is left alone.
func (a *Agent) announce(ctx context.Context, under *underlay) error {
	want := &store.NodeRecord{Name: a.cfg.Node, VTEP: under.ip.String(), Port: a.cfg.Port}
	cur, err := a.reg.Node(ctx, a.cfg.Node)
	if err != nil || (cur != nil && *cur == *want) {
		return err
	}
	return a.reg.PutNode(ctx, want)
}

// plan is what the local ends need from the registry.
type plan struct {
	// needVNI are the links that want a tunnel and have no VNI yet;
	// peerNodes the nodes their tunnels go to.
	needVNI   []string
	peerNodes map[string]bool
	// remote are the links looked at that want a tunnel: their settings
	// are read again.
	remote []string
	// lost are local ends the registry does not hold; stale are ends it
	// holds for this node whose attachment is gone from it.
	lost, stale []*store.EndRecord
}

// withNode runs fn under the node lock, with the node's local store: the
// plugin's ADD and DEL change the same parked ends and records under it.
// The lock is held for fn alone.
func (a *Agent) withNode(ctx context.Context, fn func(st *store.Local) error) error {
	return a.withNodeWithin(ctx, 0, fn)
}

// plan reads the local ends, under the lock, and notes what they need.
func (a *Agent) plan(ctx context.Context, view *registryView, full bool, dirty map[endID]bool) (p *plan, err error) {
	err = a.withNode(ctx, func(st *store.Local) error {
		p, err = a.planLocked(ctx, st, view, full, dirty)
		return err
	})
	return p, err
}

func (a *Agent) planLocked(ctx context.Context, st *store.Local, view *registryView, full bool, dirty map[endID]bool) (*plan, error) {
	recs, err := st.Links(ctx)
	if err != nil {
		return nil, err
	}
	p := &plan{peerNodes: map[string]bool{}}
	local := map[endID]bool{}
	for _, rec := range recs {
		for i := range rec.Ends {
			mine, other := &rec.Ends[i], &rec.Ends[1-i]
			if !podlink.Recorded(mine) || !mine.Declared {
				continue
			}
			key := endKey(mine.Pod, mine.IfName)
			local[key] = true
			if full && view.ends[key] == nil {
				p.lost = append(p.lost, &store.EndRecord{Pod: mine.Pod, IfName: mine.IfName, PeerPod: other.Pod,
					PeerIfName: other.IfName, Node: a.cfg.Node, Attachment: *mine.Attachment})
			}
			if !full && !dirty[key] && !dirty[endKey(other.Pod, other.IfName)] {
				continue
			}
			if peer := a.remotePeer(view, mine, other); peer != nil {
				p.peerNodes[peer.Node] = true
				p.remote = append(p.remote, rec.ID)
				if view.vnis[rec.ID] == 0 {
					p.needVNI = append(p.needVNI, rec.ID)
				}
			}
		}
	}
	if full {
		for key, e := range view.ends {
			if e.Node != a.cfg.Node || local[key] {
				continue
			}
			if att, err := st.Attachment(ctx, e.Attachment); err == nil && att == nil {
				p.stale = append(p.stale, e)
			}
		}
	}
	return p, nil
}

// remotePeer returns the registry's record of other when it is on another
// node and the two ends declare each other; mine must be registered here
// by the attachment that made it.
func (a *Agent) remotePeer(view *registryView, mine, other *store.LinkEnd) *store.EndRecord {
	if podlink.Recorded(other) {
		// The peer is on this node, whatever the registry still says (its
		// old node's registration may not be replaced yet): the plugin
		// stitched the two ends here.
		return nil
	}
	myReg := view.ends[endKey(mine.Pod, mine.IfName)]
	peer := view.ends[endKey(other.Pod, other.IfName)]
	if myReg != nil && myReg.Node == a.cfg.Node && myReg.Attachment == *mine.Attachment &&
		peer != nil && peer.Node != a.cfg.Node && myReg.Declares(peer) && peer.Declares(myReg) {
		return peer
	}
	return nil
}

// apply makes and removes tunnels from the local ends as they are now,
// under the lock; the netdevs of removed tunnels are deleted after it is
// released, as each deletion waits for an RCU grace period (docs/performance.md) that a DEL
// on the node need not wait for too.
func (a *Agent) apply(ctx context.Context, under *underlay, view *registryView, full bool, dirty map[endID]bool) error {
	var t *tunnels
	err := a.withNode(ctx, func(st *store.Local) (err error) {
		t, err = a.applyLocked(ctx, st, under, view, full, dirty)
		return err
	})
	if t == nil {
		return err
	}
	defer t.close()
	return errors.Join(err, t.deleteRemoved())
}

// applyLocked is apply's work under the lock. It returns the tunnels it
// worked on (nil when the node has no parking namespace yet), for their
// removed netdevs to be deleted.
func (a *Agent) applyLocked(ctx context.Context, st *store.Local, under *underlay, view *registryView, full bool, dirty map[endID]bool) (*tunnels, error) {
	recs, err := st.Links(ctx)
	if err != nil {
		return nil, err
	}
	parkNS, err := parking.Open(ctx, st, a.cfg.StoreDir, false)
	if errors.Is(err, parking.ErrNone) {
		return nil, nil // no pod link was ever made on this node
	}
	if err != nil {
		return nil, err
	}
	t, err := openTunnels(parkNS, under, a.cfg)
	if err != nil {
		parkNS.Close()
		return nil, err
	}

	wanted := map[string]bool{}
	var errs []error
	for _, rec := range recs {
		for i := range rec.Ends {
			mine, other := &rec.Ends[i], &rec.Ends[1-i]
			if !podlink.Recorded(mine) || !mine.Declared {
				continue
			}
			if !full && !dirty[endKey(mine.Pod, mine.IfName)] && !dirty[endKey(other.Pod, other.IfName)] {
				// Not looked at this time: its tunnel stays if it has one.
				if a.remotePeer(view, mine, other) != nil {
					wanted[tunnelAlias(rec.ID)] = true
				}
				continue
			}
			want, err := a.reconcileEnd(ctx, st, t, view, rec, i)
			if err != nil {
				errs = append(errs, fmt.Errorf("link %s: %w", rec.ID, err))
				want = true // leave it as it is until the next pass
			}
			if want {
				wanted[tunnelAlias(rec.ID)] = true
			}
		}
	}
	// Tunnels whose local end is gone (its pod's DEL took the parked end
	// with it) or that no link wants any more.
	t.removeUnwanted(wanted)
	return t, errors.Join(errs...)
}

// reconcileEnd makes or removes the tunnel of one local end, and gives it
// the link's run-time settings (settings.go), which it mirrors into the
// local record. It reports whether the end wants a tunnel.
func (a *Agent) reconcileEnd(ctx context.Context, st *store.Local, t *tunnels, view *registryView, rec *store.LinkRecord, i int) (bool, error) {
	id, mine, other := rec.ID, &rec.Ends[i], &rec.Ends[1-i]
	alias := tunnelAlias(id)
	if peer := a.remotePeer(view, mine, other); peer != nil {
		node, known := view.nodes[peer.Node]
		vni := view.vnis[id]
		switch {
		case !known || vni == 0:
			// The link became remote since the plan: next pass.
			a.markDirty(endKey(mine.Pod, mine.IfName))
			return true, nil
		case node == nil:
			// The peer's node has not announced itself yet: its agent's
			// announcement is a change that brings us back here.
		default:
			d := podlink.OnPeerRegistered(rec, i, inRecordOrder(rec, view.settings[id]), podlink.Observation{Parking: true})
			return true, takeSteps(d.Steps, func(s podlink.Step) error {
				switch s.Action {
				case podlink.Impair:
					return t.park.Impair(mine.ParkedIndex, link.ImpairmentOf(d.Next.Toward(i)))
				case podlink.Tunnel:
					return t.ensure(ctx, alias, vni, node, mine.ParkedIndex)
				case podlink.Plug, podlink.Pull:
					return t.park.SetUp(mine.ParkedIndex, s.Action == podlink.Plug)
				case podlink.PutRecord:
					return st.PutLink(ctx, &d.Next)
				}
				return fmt.Errorf("link %s: the agent does not take step %v", id, s.Action)
			})
		}
	}
	if !t.remove(alias) {
		return false, nil
	}
	// The remote peer went away (unplug the cable), or came to this node,
	// where the plugin stitched the two ends: the tunnel may have taken
	// this end's side of the stitch. Only then is the stitch looked at.
	obs := podlink.Observation{Parking: true}
	if podlink.Recorded(other) {
		obs.Ends[i].StitchedTo, _ = t.park.Stitched(mine.ParkedIndex)
		obs.Ends[1-i].StitchedTo, _ = t.park.Stitched(other.ParkedIndex)
	}
	d := podlink.OnPeerGone(rec, i, obs)
	return false, takeSteps(d.Steps, func(s podlink.Step) error {
		switch s.Action {
		case podlink.Unplug:
			return t.park.SetUp(mine.ParkedIndex, false)
		case podlink.Stitch:
			return t.park.Stitch(mine.ParkedIndex, other.ParkedIndex)
		}
		return fmt.Errorf("link %s: the agent does not take step %v", id, s.Action)
	})
}

// takeSteps takes podlink's steps for one end, in order, stopping at the first
// that fails. The agent's steps are its tunnels' (tunnel.go), not the
// plugin's Executor's: it adds the tunnel kind of stitch.
func takeSteps(steps []podlink.Step, do func(podlink.Step) error) error {
	for _, s := range steps {
		if err := do(s); err != nil {
			return err
		}
	}
	return nil
}

// repairRegistry re-registers this node's ends the registry lost, and
// withdraws ends it holds for this node whose attachment is gone (a DEL
// that could not reach the agent, a node that rebooted). Its writes go
// through the queue, behind the plugin's, and each checks again when its
// turn comes: an ADD may have registered the end since the registry was
// read, a DEL may have removed its attachment, and a withdrawal names the
// attachment, so it never removes a later registration.
func (a *Agent) repairRegistry(ctx context.Context, p *plan, view *registryView) error {
	for _, end := range p.lost {
		err := a.write(ctx, func(ctx context.Context) error {
			if cur, err := a.reg.End(ctx, end.Pod, end.IfName); err != nil || cur != nil {
				return err
			}
			here, err := a.attachmentHere(ctx, end.Attachment)
			if err != nil || !here {
				return err
			}
			a.log.Info("re-registering an end the registry had lost", "pod", end.Pod, "interface", end.IfName)
			return a.reg.RegisterEnds(ctx, []*store.EndRecord{end})
		})
		if err != nil {
			return err
		}
	}
	for _, e := range p.stale {
		err := a.write(ctx, func(ctx context.Context) error {
			cur, err := a.reg.End(ctx, e.Pod, e.IfName)
			if err != nil || cur == nil || cur.Node != a.cfg.Node || cur.Attachment != e.Attachment {
				// Withdrawn already (by the DEL that made it stale) or
				// replaced since the registry was read.
				return err
			}
			a.log.Info("withdrawing an end whose attachment is gone", "pod", e.Pod, "interface", e.IfName)
			return a.reg.UnregisterEnds(ctx, a.cfg.Node, e.Attachment, e.Pod, []string{e.IfName})
		})
		if err != nil {
			return err
		}
		delete(view.ends, endKey(e.Pod, e.IfName))
	}
	return nil
}

// write queues op behind the plugin's writes and waits for its outcome.
func (a *Agent) write(ctx context.Context, op func(context.Context) error) error {
	select {
	case err := <-a.writes.enqueue(op).done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// attachmentHere reports whether the local store still records key.
func (a *Agent) attachmentHere(ctx context.Context, key store.AttachmentKey) (here bool, err error) {
	err = a.withNode(ctx, func(st *store.Local) error {
		att, err := st.Attachment(ctx, key)
		here = att != nil
		return err
	})
	return here, err
}

// releaseUnused frees the VNIs of links that no registered end declares
// any more: both pods are gone. If one comes back meanwhile, its link gets
// a VNI again (most likely the same one: the search starts from a hash of
// the link id), and the tunnels follow it.
func (a *Agent) releaseUnused(ctx context.Context, view *registryView) error {
	live := map[string]bool{}
	for _, e := range view.ends {
		live[e.LinkID()] = true
	}
	for id := range view.vnis {
		if live[id] {
			continue
		}
		if err := a.reg.ReleaseVNI(ctx, id); err != nil {
			return err
		}
		delete(view.vnis, id)
	}
	return nil
}

// registryView is the agent's copy of the registry's ends, nodes and VNIs
// (by link id).
type registryView struct {
	ends  map[endID]*store.EndRecord
	nodes map[string]*store.NodeRecord
	vnis  map[string]uint32
	// settings are links' run-time settings, in the order of the link
	// id's ends (nil: none).
	settings map[string]*store.Settings
}

func (v *registryView) node(ctx context.Context, reg store.Registry, name string) (*store.NodeRecord, error) {
	if n, ok := v.nodes[name]; ok {
		return n, nil
	}
	n, err := reg.Node(ctx, name)
	if err != nil {
		return nil, err
	}
	v.nodes[name] = n
	return n, nil
}

// readRegistry refreshes the agent's copy: all of it with full, else the
// dirty ends and their peers' records as the copy knows them.
func (a *Agent) readRegistry(ctx context.Context, full bool, dirty map[endID]bool) (*registryView, error) {
	if full || a.view == nil {
		// VNIs first: a link gets one only once both its ends are
		// registered, so every VNI read here has its ends in the read
		// that follows, unless they have gone since (see releaseUnused).
		vnis, err := a.reg.VNIs(ctx)
		if err != nil {
			return nil, err
		}
		ends, err := a.reg.Ends(ctx)
		if err != nil {
			return nil, err
		}
		settings, err := a.reg.AllLinkSettings(ctx)
		if err != nil {
			return nil, err
		}
		v := &registryView{ends: map[endID]*store.EndRecord{}, nodes: map[string]*store.NodeRecord{}, vnis: map[string]uint32{}, settings: settings}
		for _, e := range ends {
			v.ends[endKey(e.Pod, e.IfName)] = e
		}
		for vni, id := range vnis {
			v.vnis[id] = vni
		}
		a.view = v
		return v, nil
	}
	for key := range dirty {
		e, err := a.reg.End(ctx, key.pod, key.ifName)
		if err != nil {
			return nil, err
		}
		if e == nil {
			delete(a.view.ends, key)
		} else {
			a.view.ends[key] = e
		}
	}
	// Nodes are re-read on demand: a node that moved its VTEP sends a
	// node change, which makes the next reconcile full.
	a.view.nodes = map[string]*store.NodeRecord{}
	return a.view, nil
}

// endID names a pod's interface: one end of a pod link.
type endID struct{ pod, ifName string }

func endKey(pod, ifName string) endID { return endID{pod, ifName} }
