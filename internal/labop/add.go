package labop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/agentapi"
	"github.com/ratchet-cni/ratchet/internal/kind"
	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/internal/podlink"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// AddRequest is a link to add: its two ends, in the caller's order, and
// their specs, validated as an annotation's (CheckSpec).
type AddRequest struct {
	Ends  [2]End
	Specs [2]*netconf.LinkSpec
	// Annotated: the pods' ratchet.cni.dev/links annotations declare the
	// link (ratchetd applies an edit of a running pod), so it is recorded
	// as a pod's ADD records a declared link, not as the administrator's:
	// the next ADD of either pod makes its end only if its annotation
	// declares it then.
	Annotated bool
	// MaxLinksPerPod and MaxParkedEnds are the network config's limits
	// (netconf.NetConf); zero is its default.
	MaxLinksPerPod, MaxParkedEnds int
}

// CheckSpec reads spec, end e's, through JSON, as an annotation's link is
// read, and validates it with the same rules.
func CheckSpec(e End, spec netconf.LinkSpec) (*netconf.LinkSpec, error) {
	b, err := json.Marshal(spec)
	if err == nil {
		spec = netconf.LinkSpec{}
		err = json.Unmarshal(b, &spec)
	}
	if err == nil {
		err = spec.Validate(e.String(), netconf.Annotation)
	}
	if err == nil {
		err = netconf.CheckPodLinkName(e.IfName)
	}
	if err != nil {
		return nil, err
	}
	return &spec, nil
}

// Add makes req's link: both ends are made in the running pods'
// namespaces (or, for a pod of another node, by its node's ratchetd),
// stitched and plugged in, and the link recorded as added, or, should any
// step fail, nothing is left of it. Every check that reads the store
// comes first; the kernel refuses an interface name a pod already has,
// and then the undo removes what was made.
func (s *Session) Add(ctx context.Context, req *AddRequest) (err error) {
	maxLinks, maxParked := req.MaxLinksPerPod, req.MaxParkedEnds
	if maxLinks <= 0 {
		maxLinks = netconf.DefaultMaxLinksPerPod
	}
	if maxParked <= 0 {
		maxParked = netconf.DefaultMaxParkedEnds
	}
	if s.x == nil {
		return errors.New("link add: the node has no parking namespace yet (no pod link was ever made here)")
	}
	var keys [2]store.AttachmentKey
	var podNS [2]ns.NetNS
	defer func() {
		for _, n := range podNS {
			if n != nil {
				n.Close()
			}
		}
	}()
	// remote is the argument whose pod is on another node, -1 for none.
	remote := -1
	for i, e := range req.Ends {
		pr, err := s.st.Pod(ctx, e.Pod)
		if err != nil {
			return err
		}
		if pr == nil {
			if remote >= 0 {
				return fmt.Errorf("link add: neither pod %s nor %s is on this node: run link add on the node of one of them", shown(req.Ends[0].Pod), shown(e.Pod))
			}
			// On another node (its agent makes its end), or nowhere, or
			// a pod that declares no pod link: that node's agent answers.
			remote = i
			continue
		}
		if e.IfName == pr.Attachment.IfName {
			return fmt.Errorf("link add: %s is the pod's CNI interface", shown(e.String()))
		}
		if rec, err := s.st.LinkAt(ctx, e.Pod, e.IfName); err != nil {
			return err
		} else if rec != nil {
			if mine, _, ok := rec.End(e.Pod, e.IfName); ok && (mine.Declared || mine.Attachment != nil) {
				return fmt.Errorf("link add: %s is already an end of link %s", shown(e.String()), shown(rec.ID))
			}
		}
		recs, err := s.st.LinksOf(ctx, e.Pod)
		if err != nil {
			return err
		}
		have := 0
		for _, r := range recs {
			for _, end := range r.Ends {
				if end.Pod == e.Pod && (end.Declared || end.Attachment != nil) {
					have++
				}
			}
		}
		if have+1 > maxLinks {
			return fmt.Errorf("link add: pod %s has %d links: one more would take it past maxLinksPerPod (%d)", shown(e.Pod), have, maxLinks)
		}
		if podNS[i], err = ns.GetNS(pr.Netns); err != nil {
			return fmt.Errorf("link add: pod %s: %w", shown(e.Pod), err)
		}
		keys[i] = pr.Attachment
	}
	if have, err := s.x.ParkedCount(); err != nil {
		return err
	} else if want := 2 - min(remote+1, 1); have+want > maxParked {
		return fmt.Errorf("link add: the node holds %d parked ends: %d more would take it past maxParkedEnds (%d)", have, want, maxParked)
	}
	id, _ := store.LinkID(req.Ends[0].Pod, req.Ends[0].IfName, req.Ends[1].Pod, req.Ends[1].IfName)
	if prev, err := s.st.Link(ctx, id); err != nil {
		return err
	} else if prev != nil {
		return fmt.Errorf("link add: link %s exists already (declared by one of the pods?)", shown(id))
	}
	// A link from annotations between two pods of this node is a
	// declared one, as the pods' ADDs would have recorded it; one across
	// nodes goes through the cluster's added-link records, marked as the
	// annotations'.
	rec := &store.LinkRecord{ID: id, Added: !req.Annotated || remote >= 0, Annotated: req.Annotated && remote >= 0}
	order := [2]int{0, 1} // the record's end of each argument
	if !firstIsEnd0(req) {
		order = [2]int{1, 0}
	}
	for a, i := range order {
		rec.Ends[i] = store.LinkEnd{Pod: req.Ends[a].Pod, IfName: req.Ends[a].IfName, Declared: true}
		if rec.Ends[i].Spec, err = json.Marshal(req.Specs[a]); err != nil {
			return err
		}
	}
	undo := podlink.NewUndo(nil)
	ok := false
	defer func() { undo.Finish(ok) }()
	mtu := 0
	if remote >= 0 {
		if mtu, err = s.publish(ctx, rec, order, 1-remote, keys[1-remote], undo); err != nil {
			return err
		}
	}
	x := s.x.WithUndo(undo)
	for a, i := range order {
		if a == remote {
			continue // its node's agent made it
		}
		d := podlink.OnAdd(rec, i, keys[a], x.ObserveParked(rec))
		spec, n, key := req.Specs[a], podNS[a], keys[a]
		err := x.Apply(ctx, rec, &d, func(int) (*link.Veth, error) {
			return podlink.EndVeth(rec, i, kind.Endpoint(spec.Local(), n), key, mtu), nil
		})
		if err != nil {
			return fmt.Errorf("link add: %s: %w", shown(req.Ends[a].String()), err)
		}
		*rec = d.Next
		// The end may be a collector that links are mirrored to.
		e := rec.Ends[i]
		if err := x.RepointMirrors(ctx, s.st, e.Pod, e.IfName, e.ParkedIndex); err != nil {
			return fmt.Errorf("link add: %s: %w", shown(req.Ends[a].String()), err)
		}
	}
	if err := x.PlugIn(); err != nil {
		return err
	}
	if err := s.st.PutLinks(ctx, []*store.LinkRecord{rec}); err != nil {
		return err
	}
	ok = true
	return nil
}

// publish hands a link between a pod of this node (argument local, held
// by attachment key) and one on another node to ratchetd, which registers
// the local end and records the link in the cluster, and answers once the
// other node's agent has made and registered its end. It returns the
// tunnel MTU (the local end's default MTU, as for any cross-node link),
// and pushes the withdrawal on undo. rec becomes the local record: only
// the local end is this node's to declare.
func (s *Session) publish(ctx context.Context, rec *store.LinkRecord, order [2]int, local int, key store.AttachmentKey, undo *podlink.Undo) (int, error) {
	mine := order[local]
	req := &agentapi.Request{Op: agentapi.OpLinkAdd, LinkID: rec.ID, Pod: rec.Ends[mine].Pod, IfName: rec.Ends[mine].IfName,
		Attachment: agentapi.Attachment{Network: key.Network, ContainerID: key.ContainerID, IfName: key.IfName}}
	for _, e := range rec.Ends {
		req.Added = append(req.Added, agentapi.AddedEnd{Pod: e.Pod, IfName: e.IfName, Spec: e.Spec})
	}
	callCtx, cancel := context.WithTimeout(ctx, agentWait)
	defer cancel()
	resp, err := agentapi.Call(callCtx, s.socket, req)
	if err != nil {
		return 0, fmt.Errorf("link add: pod %s is not on this node: its own node's ratchetd makes its end: %w", shown(rec.Ends[1-mine].Pod), err)
	}
	// The undo runs once ctx may be done: it must still reach ratchetd.
	undo.Push("withdraw link "+rec.ID+" from the cluster", func() error {
		return s.withdraw(context.WithoutCancel(ctx), rec.ID, req.Pod, req.IfName, key)
	})
	rec.AddedAcross = true
	other := &rec.Ends[1-mine]
	other.Declared, other.Spec = false, nil
	return resp.MTU, nil
}

// withdraw asks ratchetd to delete a cross-node added link's record and
// this node's registration of end pod:ifName (held by key); the other
// node's agent then removes its end.
func (s *Session) withdraw(ctx context.Context, id, pod, ifName string, key store.AttachmentKey) error {
	ctx, cancel := context.WithTimeout(ctx, agentWait)
	defer cancel()
	_, err := agentapi.Call(ctx, s.socket, &agentapi.Request{Op: agentapi.OpLinkDel, LinkID: id, Pod: pod, IfName: ifName,
		Attachment: agentapi.Attachment{Network: key.Network, ContainerID: key.ContainerID, IfName: key.IfName}})
	if err != nil {
		return fmt.Errorf("link %s: withdraw it from the cluster: %w", shown(id), err)
	}
	return nil
}

// firstIsEnd0 reports whether the first end given is the record's end 0
// (store.LinkID orders a link's ends).
func firstIsEnd0(req *AddRequest) bool {
	_, aFirst := store.LinkID(req.Ends[0].Pod, req.Ends[0].IfName, req.Ends[1].Pod, req.Ends[1].IfName)
	return aFirst
}

// Del removes the link with end e, which `link add` made: both
// interfaces go (their parked ends with them), then its record.
func (s *Session) Del(e End) error {
	ctx := context.Background()
	rec, _, err := s.Find(e)
	if err != nil {
		return err
	}
	if !rec.Added {
		return fmt.Errorf("link del: link %s is declared by its pods' annotations, not added by link add: change the annotations", shown(rec.ID))
	}
	return s.remove(ctx, rec)
}

// remove removes both of rec's ends that this node holds (their parked
// ends with them), then its record; an added link across nodes is
// withdrawn from the cluster first.
func (s *Session) remove(ctx context.Context, rec *store.LinkRecord) error {
	if rec.AddedAcross {
		// The cluster's record goes first: should this node's removal
		// fail, this node's agent removes the end once it sees it gone.
		// With this node's pod gone, its end holds no attachment: only
		// the record is withdrawn.
		end, key := rec.Ends[0], store.AttachmentKey{}
		for _, e := range rec.Ends {
			if e.Attachment != nil {
				end, key = e, *e.Attachment
			}
		}
		if err := s.withdraw(ctx, rec.ID, end.Pod, end.IfName, key); err != nil {
			return fmt.Errorf("link del: %w", err)
		}
	}
	if s.x != nil {
		for i, end := range rec.Ends {
			if end.Attachment == nil {
				continue
			}
			var n ns.NetNS
			if pr, err := s.st.Pod(ctx, end.Pod); err == nil && pr != nil && pr.Attachment == *end.Attachment {
				// A namespace gone is no error: the parked end goes alone.
				if n, err = ns.GetNS(pr.Netns); err != nil {
					n = nil
				}
			}
			err := s.x.RemoveEnd(ctx, rec, i, n)
			if n != nil {
				n.Close()
			}
			if err != nil {
				return fmt.Errorf("link del: %s: %w", endName(end), err)
			}
		}
	}
	return s.st.DeleteLink(ctx, rec.ID)
}
