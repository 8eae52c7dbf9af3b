package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/agentapi"
	"github.com/ratchet-cni/ratchet/internal/kind"
	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/internal/parking"
	"github.com/ratchet-cni/ratchet/internal/podlink"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// A link `ratchetctl link add` makes between pods on two nodes: ratchetctl
// on one node asks its agent to publish it (linkAdd), which registers the
// local end and records the link in the cluster (links/<id>/added); the
// agent of the node that runs the peer pod sees the record (the watch, or
// a full pass), makes the peer's end in the pod as the plugin would,
// records it locally as added and registers it; the tunnels then follow
// as for any cross-node link. `link del` on either node withdraws the
// record (linkDel), and the other agent removes its end and withdraws it.
// A failure to make the peer's end is written into the record (Failed),
// for the `link add` waiting on it to undo everything.

// addedWait is how often linkAdd looks at whether the peer's end is made.
const addedWait = 20 * time.Millisecond

// linkAdd answers OpLinkAdd: register the local end, record the link,
// and wait for the peer's agent to make and register its end; on failure
// or timeout, withdraw both.
func (a *Agent) linkAdd(ctx context.Context, req *agentapi.Request, under *underlay) *agentapi.Response {
	added, mine, err := checkAddRequest(req)
	if err != nil {
		return failed(types.ErrInvalidNetworkConfig, err.Error())
	}
	peer := added.Ends[1-mine]
	end := &store.EndRecord{Pod: req.Pod, IfName: req.IfName, PeerPod: peer.Pod, PeerIfName: peer.IfName,
		Node: a.cfg.Node, Attachment: attachmentKey(req.Attachment)}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.CallTimeout)
	defer cancel()
	if cur, err := a.reg.End(ctx, peer.Pod, peer.IfName); err != nil {
		return storeFailed(err)
	} else if cur != nil {
		return failed(types.ErrInvalidNetworkConfig, fmt.Sprintf("%s:%s is already an end of a link on node %s", peer.Pod, peer.IfName, cur.Node))
	}
	if err := a.write(ctx, func(ctx context.Context) error { return a.reg.RegisterEnds(ctx, []*store.EndRecord{end}) }); err != nil {
		return storeFailed(err)
	}
	ok := false
	defer func() {
		if !ok {
			a.withdrawAdded(req.LinkID, end)
		}
	}()
	if err := a.reg.PutAddedLink(ctx, req.LinkID, added, 0); err != nil {
		if errors.Is(err, store.ErrAddedChanged) {
			return failed(types.ErrInvalidNetworkConfig, fmt.Sprintf("link %s is added already (from another node?)", req.LinkID))
		}
		return storeFailed(err)
	}
	for {
		rec, _, err := a.reg.AddedLink(ctx, req.LinkID)
		if err != nil {
			return storeFailed(err)
		}
		if rec == nil {
			return failed(types.ErrTryAgainLater, fmt.Sprintf("link %s: its record went meanwhile (a link del?)", req.LinkID))
		}
		if rec.Failed != "" {
			return failed(types.ErrInvalidNetworkConfig, fmt.Sprintf("%s:%s: %s", peer.Pod, peer.IfName, rec.Failed))
		}
		if cur, err := a.reg.End(ctx, peer.Pod, peer.IfName); err != nil {
			return storeFailed(err)
		} else if cur != nil && cur.Declares(end) && end.Declares(cur) {
			ok = true
			a.markDirty(endKey(end.Pod, end.IfName))
			return &agentapi.Response{MTU: under.mtu}
		}
		select {
		case <-ctx.Done():
			return failed(types.ErrTryAgainLater, fmt.Sprintf("pod %s: no node made its end %s within %v (is the pod running, on a node whose ratchetd runs?)", peer.Pod, peer.IfName, a.cfg.CallTimeout))
		case <-time.After(addedWait):
		}
	}
}

// withdrawAdded deletes link id's record and withdraws the local end,
// on its own deadline: the request's may have passed.
func (a *Agent) withdrawAdded(id string, end *store.EndRecord) {
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.CallTimeout)
	defer cancel()
	if err := a.reg.DeleteAddedLink(ctx, id); err != nil {
		a.log.Error("withdraw an added link's record", "link", id, "error", err)
	}
	err := a.write(ctx, func(ctx context.Context) error {
		return a.reg.UnregisterEnds(ctx, a.cfg.Node, end.Attachment, end.Pod, []string{end.IfName})
	})
	if err != nil {
		a.log.Error("withdraw an added link's end", "link", id, "pod", end.Pod, "interface", end.IfName, "error", err)
	}
}

// linkDel answers OpLinkDel: the link's record goes, then the local end's
// registration.
func (a *Agent) linkDel(ctx context.Context, req *agentapi.Request) *agentapi.Response {
	podA, ifA, podB, ifB, ok := store.ParseLinkID(req.LinkID)
	if !ok || !(req.Pod == podA && req.IfName == ifA || req.Pod == podB && req.IfName == ifB) {
		return failed(types.ErrInvalidNetworkConfig, fmt.Sprintf("end %s:%s: not an end of link %q", req.Pod, req.IfName, req.LinkID))
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.CallTimeout)
	defer cancel()
	if err := a.reg.DeleteAddedLink(ctx, req.LinkID); err != nil {
		return storeFailed(err)
	}
	err := a.write(ctx, func(ctx context.Context) error {
		return a.reg.UnregisterEnds(ctx, a.cfg.Node, attachmentKey(req.Attachment), req.Pod, []string{req.IfName})
	})
	if err != nil {
		return storeFailed(err)
	}
	a.markLink(req.LinkID)
	return &agentapi.Response{}
}

// checkAddRequest checks an OpLinkAdd request as the record it writes is
// checked when read: the ends are the link id's, the named one is one of
// them, and both specs are valid as an annotation's.
func checkAddRequest(req *agentapi.Request) (*store.AddedLink, int, error) {
	if len(req.Added) != 2 {
		return nil, 0, fmt.Errorf("link add: want 2 ends, got %d", len(req.Added))
	}
	added := &store.AddedLink{}
	for i, e := range req.Added {
		added.Ends[i] = store.AddedEnd{Pod: e.Pod, IfName: e.IfName, Spec: e.Spec}
	}
	if _, err := checkAdded(req.LinkID, added); err != nil {
		return nil, 0, err
	}
	for i, e := range added.Ends {
		if e.Pod == req.Pod && e.IfName == req.IfName {
			return added, i, nil
		}
	}
	return nil, 0, fmt.Errorf("end %s:%s: not an end of link %s", req.Pod, req.IfName, req.LinkID)
}

// checkAdded checks an added link's record and returns its ends' specs:
// the same rules as an annotation's link (names, bounds), each naming the
// other end as its peer.
func checkAdded(id string, added *store.AddedLink) ([2]*netconf.LinkSpec, error) {
	var specs [2]*netconf.LinkSpec
	if err := added.Check(id); err != nil {
		return specs, err
	}
	for i, e := range added.Ends {
		other := added.Ends[1-i]
		spec := &netconf.LinkSpec{}
		if err := json.Unmarshal(e.Spec, spec); err != nil {
			return specs, fmt.Errorf("%s:%s: spec: %w", e.Pod, e.IfName, err)
		}
		where := e.Pod + ":" + e.IfName
		if err := spec.Validate(where, netconf.Annotation); err != nil {
			return specs, err
		}
		if err := netconf.CheckPodLinkName(e.IfName); err != nil {
			return specs, err
		}
		if spec.Name != e.IfName || spec.Peer == nil || spec.Peer.Namespace+"/"+spec.Peer.Pod != other.Pod || spec.Peer.Name != other.IfName {
			return specs, fmt.Errorf("%s: its spec is not of a link to %s:%s", where, other.Pod, other.IfName)
		}
		specs[i] = spec
	}
	return specs, nil
}

// addedWork is what syncAdded found to do with the lock released: ends to
// register and withdraw, and records to mark failed.
type addedWork struct {
	register   []*store.EndRecord
	unregister []*store.EndRecord
	failed     map[string]string
}

// syncAdded makes this node's ends of the added links in ids (all of
// them with full) whose pod runs here, and removes this node's added ends
// whose link's record is gone. The local store is read under the lock
// first, then the cluster, then the lock is taken again to act: an added
// end seen under the lock had its record written before (ratchetctl
// writes it before it records the end), so the read that follows sees it.
func (a *Agent) syncAdded(ctx context.Context, under *underlay, full bool, ids map[string]bool) error {
	if !full && len(ids) == 0 {
		return nil
	}
	look := map[string]bool{}
	for id := range ids {
		look[id] = true
	}
	err := a.withNode(ctx, func(st *store.Local) error {
		recs, err := st.Links(ctx)
		if err != nil {
			return err
		}
		for _, rec := range recs {
			if rec.AddedAcross && addedHere(rec) >= 0 {
				look[rec.ID] = true
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	records := map[string]*store.AddedLink{}
	revs := map[string]int64{}
	if full {
		if records, err = a.reg.AddedLinks(ctx); err != nil {
			return err
		}
	}
	for id := range look {
		if _, ok := records[id]; ok && full {
			continue
		}
		r, rev, err := a.reg.AddedLink(ctx, id)
		if err != nil {
			return err
		}
		if r != nil {
			records[id], revs[id] = r, rev
		}
	}
	for id := range records {
		look[id] = true
	}
	// A record is acted on only while its other end is registered: a
	// record left behind by a pod that is gone makes nothing.
	registered := map[string]bool{}
	for id, r := range records {
		if r.Failed != "" {
			continue
		}
		for i, e := range r.Ends {
			cur, err := a.reg.End(ctx, e.Pod, e.IfName)
			if err != nil {
				return err
			}
			if cur != nil && cur.Node != a.cfg.Node {
				registered[id+"|"+fmt.Sprint(i)] = true
			}
		}
	}
	w := &addedWork{failed: map[string]string{}}
	err = a.withNode(ctx, func(st *store.Local) error {
		return a.syncAddedLocked(ctx, st, under, look, records, registered, w)
	})
	for _, e := range w.register {
		if werr := a.write(ctx, func(ctx context.Context) error { return a.reg.RegisterEnds(ctx, []*store.EndRecord{e}) }); werr != nil {
			err = errors.Join(err, werr)
		}
		a.markDirty(endKey(e.Pod, e.IfName))
	}
	for _, e := range w.unregister {
		werr := a.write(ctx, func(ctx context.Context) error {
			return a.reg.UnregisterEnds(ctx, a.cfg.Node, e.Attachment, e.Pod, []string{e.IfName})
		})
		err = errors.Join(err, werr)
		a.markDirty(endKey(e.Pod, e.IfName))
	}
	for id, why := range w.failed {
		r := *records[id]
		r.Failed = why
		// A record changed since (deleted by the waiting link add that
		// gave up) is left as it is.
		if werr := a.reg.PutAddedLink(ctx, id, &r, revs[id]); werr != nil && !errors.Is(werr, store.ErrAddedChanged) {
			err = errors.Join(err, werr)
		}
	}
	return err
}

// addedHere returns the index of the end an added link's local record
// holds when its other end is not on this node, else -1.
func addedHere(rec *store.LinkRecord) int {
	for i := range rec.Ends {
		if podlink.Recorded(&rec.Ends[i]) && !podlink.Recorded(&rec.Ends[1-i]) {
			return i
		}
	}
	return -1
}

func (a *Agent) syncAddedLocked(ctx context.Context, st *store.Local, under *underlay, look map[string]bool,
	records map[string]*store.AddedLink, registered map[string]bool, w *addedWork) error {
	var x *podlink.Executor
	var parkNS ns.NetNS
	defer func() {
		// The executor first: it uses the namespace.
		if x != nil {
			x.Close()
		}
		if parkNS != nil {
			parkNS.Close()
		}
	}()
	executor := func() (*podlink.Executor, error) {
		if x != nil {
			return x, nil
		}
		var err error
		if parkNS == nil {
			if parkNS, err = parking.Open(ctx, st, a.cfg.StoreDir, false); err != nil {
				parkNS = nil
				return nil, err
			}
		}
		if x, err = podlink.NewExecutor(nil, parkNS, nil); err != nil {
			x = nil
		}
		return x, err
	}
	var errs []error
	for id := range look {
		rec, err := st.Link(ctx, id)
		if err != nil {
			return err
		}
		r := records[id]
		if r == nil || r.Failed != "" {
			// Withdrawn (link del on the other node): this node's end goes.
			if rec == nil || !rec.AddedAcross {
				continue
			}
			i := addedHere(rec)
			if i < 0 {
				continue
			}
			x, err := executor()
			if err == nil {
				err = a.removeAdded(ctx, st, x, rec, i)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("link %s: remove the added end: %w", id, err))
				continue
			}
			mine := rec.Ends[i]
			w.unregister = append(w.unregister, &store.EndRecord{Pod: mine.Pod, IfName: mine.IfName, Node: a.cfg.Node, Attachment: *mine.Attachment})
			continue
		}
		if rec != nil {
			continue // made already, here or by the plugin
		}
		for i, e := range r.Ends {
			if !registered[id+"|"+fmt.Sprint(1-i)] {
				continue
			}
			pr, err := st.Pod(ctx, e.Pod)
			if err != nil {
				return err
			}
			if pr == nil {
				continue // not on this node
			}
			x, err := executor()
			var end *store.EndRecord
			if err == nil {
				end, err = a.makeAdded(ctx, st, x, under, id, r, i, pr)
			}
			if err != nil {
				a.log.Warn("could not make an added link's end", "link", id, "pod", e.Pod, "interface", e.IfName, "error", err)
				w.failed[id] = err.Error()
				continue
			}
			a.log.Info("made an added link's end", "link", id, "pod", e.Pod, "interface", e.IfName)
			w.register = append(w.register, end)
		}
	}
	return errors.Join(errs...)
}

// makeAdded makes end i of added link id in pod pr's namespace, with its
// parked end, as the plugin makes an end (marked as the pod's attachment's,
// so the pod's DEL removes it), and records it as added; on failure
// nothing is left of it. It returns the end to register.
func (a *Agent) makeAdded(ctx context.Context, st *store.Local, base *podlink.Executor, under *underlay, id string,
	r *store.AddedLink, i int, pr *store.PodRecord) (*store.EndRecord, error) {
	specs, err := checkAdded(id, r)
	if err != nil {
		return nil, err
	}
	podNS := openRecorded(pr.Netns, pr.NetnsID)
	if podNS == nil {
		return nil, fmt.Errorf("pod %s: its network namespace is gone", pr.Pod)
	}
	defer podNS.Close()
	if pr.Attachment.IfName == r.Ends[i].IfName {
		return nil, fmt.Errorf("%s is the pod's CNI interface", r.Ends[i].IfName)
	}
	rec := &store.LinkRecord{ID: id, Added: true, AddedAcross: true}
	for j, e := range r.Ends {
		rec.Ends[j] = store.LinkEnd{Pod: e.Pod, IfName: e.IfName}
	}
	rec.Ends[i].Declared, rec.Ends[i].Spec = true, r.Ends[i].Spec
	undo := podlink.NewUndo(a.log)
	ok := false
	defer func() { undo.Finish(ok) }()
	x := base.WithUndo(undo)
	d := podlink.OnAdd(rec, i, pr.Attachment, x.ObserveParked(rec))
	err = x.Apply(ctx, rec, &d, func(int) (*link.Veth, error) {
		return podlink.EndVeth(rec, i, kind.Endpoint(specs[i].Local(), podNS), pr.Attachment, under.mtu), nil
	})
	if err != nil {
		return nil, err
	}
	*rec = d.Next
	// The end may be a collector that local links are mirrored to.
	if err := x.RepointMirrors(ctx, st, rec.Ends[i].Pod, rec.Ends[i].IfName, rec.Ends[i].ParkedIndex); err != nil {
		return nil, err
	}
	if err := x.PlugIn(); err != nil {
		return nil, err
	}
	if err := st.PutLinks(ctx, []*store.LinkRecord{rec}); err != nil {
		return nil, err
	}
	ok = true
	other := r.Ends[1-i]
	return &store.EndRecord{Pod: pr.Pod, IfName: r.Ends[i].IfName, PeerPod: other.Pod, PeerIfName: other.IfName,
		Node: a.cfg.Node, Attachment: pr.Attachment}, nil
}

// removeAdded removes this node's end i of added link rec, in its pod
// (when the pod's namespace is still the recorded one) and parked, and
// the link's local record.
func (a *Agent) removeAdded(ctx context.Context, st *store.Local, x *podlink.Executor, rec *store.LinkRecord, i int) error {
	end := rec.Ends[i]
	var podNS ns.NetNS
	if pr, err := st.Pod(ctx, end.Pod); err != nil {
		return err
	} else if pr != nil && pr.Attachment == *end.Attachment {
		// A namespace gone is no error: the parked end goes alone.
		podNS = openRecorded(pr.Netns, pr.NetnsID)
	}
	err := x.RemoveEnd(ctx, rec, i, podNS)
	if podNS != nil {
		podNS.Close()
	}
	if err != nil {
		return err
	}
	a.log.Info("removed an added link's end: the link was deleted", "link", rec.ID, "pod", end.Pod, "interface", end.IfName)
	return st.DeleteLink(ctx, rec.ID)
}

// openRecorded opens a pod's namespace path read from the store only
// while it still names the namespace recorded with it (want; nil in
// records of older versions): a /proc/<pid>/ns/net path may name another
// namespace once the pid is reused.
func openRecorded(path string, want *store.NetnsID) ns.NetNS {
	if path == "" {
		return nil
	}
	n, err := ns.GetNS(path)
	if err != nil {
		return nil
	}
	got, err := link.IDOf(n)
	if err != nil || want != nil && (got.Dev != want.Dev || got.Ino != want.Ino) {
		n.Close()
		return nil
	}
	return n
}
