package labop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/internal/podlink"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// The functions of this file are what ratchetd's Kubernetes watcher
// (internal/kube, through cmd/ratchetd) runs when a running pod's
// ratchet.cni.dev/links annotation changes, and what it reports: the
// same code paths as `link add`, `link del` and `links`.

// NodeLink is one pod link of this node and the hardware address of each
// end's pod interface ("" where this node does not hold that end, or it
// could not be read).
type NodeLink struct {
	podlink.LinkView
	MAC [2]string
	// VNI is the VNI of the tunnel a link to another node's pod is
	// stitched to here (0: none).
	VNI uint32
}

// NodeLinks returns every pod link of the node's local store (dir) with
// its state, as `ratchetctl links` shows it, the MAC of each end this
// node holds, read in the pod's namespace, and for a link to another
// node the VNI of its tunnel, read in the parking namespace. It waits at
// most LockWait for the node lock, and holds it only to read the store
// (View): the pods' and the parking namespace's netdevs are read after
// it is released, so that no ADD or DEL waits for them.
func NodeLinks(ctx context.Context, dir string) (out []NodeLink, err error) {
	err = View(ctx, dir, LockWait, false, func(lab *Lab) error {
		out, err = nodeLinks(lab)
		return err
	})
	return out, err
}

func nodeLinks(lab *Lab) ([]NodeLink, error) {
	pods, views := lab.Pods, lab.Links
	vnis, err := tunnelVNIs(views, lab.Parking)
	if err != nil {
		return nil, err
	}
	byPod := map[string]*store.PodRecord{}
	for _, p := range pods {
		byPod[p.Pod] = p
	}
	handles := map[string]*link.Handle{}
	defer func() {
		for _, h := range handles {
			if h != nil {
				h.Close()
			}
		}
	}()
	handle := func(pod string) *link.Handle {
		if h, seen := handles[pod]; seen {
			return h
		}
		handles[pod] = nil
		pr := byPod[pod]
		if pr == nil {
			return nil
		}
		n, err := ns.GetNS(pr.Netns)
		if err != nil {
			return nil // the pod's namespace is gone: no MAC to show
		}
		defer n.Close()
		h, err := link.NewHandle(n)
		if err != nil {
			return nil
		}
		handles[pod] = h
		return h
	}
	out := make([]NodeLink, 0, len(views))
	for _, v := range views {
		nl := NodeLink{LinkView: v, VNI: vnis[v.ID]}
		for i, e := range v.Ends {
			if e.Attachment == nil {
				continue
			}
			if pr := byPod[e.Pod]; pr == nil || pr.Attachment != *e.Attachment {
				continue
			}
			if h := handle(e.Pod); h != nil {
				if l, err := h.LinkByName(e.IfName); err == nil {
					nl.MAC[i] = l.Attrs().HardwareAddr.String()
				} else if _, gone := errors.AsType[netlink.LinkNotFoundError](err); !gone {
					return nil, fmt.Errorf("pod %s: interface %s: %w", e.Pod, e.IfName, err)
				}
			}
		}
		out = append(out, nl)
	}
	return out, nil
}

// tunnelVNIs returns, by link id, the VNI of the tunnel each remote
// link's parked end is stitched to in parking namespace park.
func tunnelVNIs(views []podlink.LinkView, park ns.NetNS) (map[string]uint32, error) {
	vnis := map[string]uint32{}
	if park == nil {
		return vnis, nil
	}
	var x *podlink.Executor
	var h *link.Handle
	defer func() {
		// The executor and handle use the namespace: closed before it.
		if x != nil {
			x.Close()
		}
		if h != nil {
			h.Close()
		}
	}()
	for _, v := range views {
		if v.State != podlink.StateRemote {
			continue
		}
		if x == nil {
			var err error
			if x, err = podlink.NewExecutor(nil, park, nil); err != nil {
				return nil, err
			}
			if h, err = link.NewHandle(park); err != nil {
				return nil, err
			}
		}
		obs := x.Observe(&store.LinkRecord{ID: v.ID, Ends: v.Ends, Settings: v.Settings, Added: v.Added})
		for _, e := range obs.Ends {
			if !e.ToTunnel {
				continue
			}
			l, err := h.LinkByIndex(e.StitchedTo)
			if _, gone := errors.AsType[netlink.LinkNotFoundError](err); gone {
				continue // the tunnel went since: no VNI to show
			} else if err != nil {
				return nil, err
			}
			if vx, ok := l.(*netlink.Vxlan); ok {
				vnis[v.ID] = uint32(vx.VxlanId)
			}
		}
	}
	return vnis, nil
}

// ErrNotAttached says that a pod of this node has no attachment (its CNI
// ADD has not run yet, or it is gone): its ADD, not ApplyLink, makes its
// ends.
var ErrNotAttached = errors.New("the pod has no attachment on this node")

// Limits are the network config's limits that ApplyLink enforces, as a
// pod's ADD does (netconf.NetConf); a zero field is its default.
type Limits struct {
	MaxLinksPerPod, MaxParkedEnds int
}

// ApplyLink makes the link between end specs[0] of pod pods[0] and end
// specs[1] of pods[1] (each spec's peer names the other end), which both
// pods' annotations declare, as `link add` does, within limits: pods[0]
// runs on this node, pods[1] on this node (peerHere) or, through
// ratchetd's socket, another. The link is recorded as the annotations'
// (AddRequest.Annotated): it lasts while they declare it. A pod of this
// node without an attachment is ErrNotAttached. It is idempotent: a link
// recorded already with the same specs is left as it is; one recorded
// with other specs (a pod declared it at its ADD while the peer did not,
// or the specs changed) is removed first, then made anew; the
// administrator's link between the two ends (`link add`) is left as it
// is.
func ApplyLink(ctx context.Context, dir, socket string, pods [2]string, specs [2]netconf.LinkSpec, peerHere bool, limits Limits) error {
	req := &AddRequest{Annotated: true, MaxLinksPerPod: limits.MaxLinksPerPod, MaxParkedEnds: limits.MaxParkedEnds}
	for i := range pods {
		req.Ends[i] = End{Pod: pods[i], IfName: specs[i].Name}
	}
	for i, e := range req.Ends {
		other := req.Ends[1-i]
		// A peer without a namespace is in the pod's own.
		p := specs[i].Peer
		var peerNS string
		if p != nil {
			peerNS = p.Namespace
			if peerNS == "" {
				peerNS, _, _ = strings.Cut(e.Pod, "/")
			}
		}
		if p == nil || peerNS+"/"+p.Pod != other.Pod || p.Name != other.IfName {
			return fmt.Errorf("%s: its spec's peer is not %s", shown(e.String()), shown(other.String()))
		}
		spec, err := CheckSpec(e, specs[i])
		if err != nil {
			return err
		}
		req.Specs[i] = spec
	}
	s, err := Open(ctx, dir, socket)
	if err != nil {
		return err
	}
	defer s.Close()
	for i, pod := range pods {
		if i == 1 && !peerHere {
			break
		}
		if pr, err := s.st.Pod(ctx, pod); err != nil {
			return err
		} else if pr == nil {
			return fmt.Errorf("pod %s: %w", shown(pod), ErrNotAttached)
		}
	}
	id, _ := store.LinkID(pods[0], specs[0].Name, pods[1], specs[1].Name)
	prev, err := s.st.Link(ctx, id)
	if err != nil {
		return err
	}
	if prev != nil {
		// The administrator's link between the two ends stays theirs:
		// the annotations do not take it over (nor re-make it with
		// their specs), and only `link del` removes it.
		if sameSpecs(prev, req) || prev.Added && !prev.Annotated {
			return nil
		}
		if err := s.remove(ctx, prev); err != nil {
			return err
		}
	}
	return s.Add(ctx, req)
}

// sameSpecs reports whether rec holds req's ends, both made, with req's
// specs.
func sameSpecs(rec *store.LinkRecord, req *AddRequest) bool {
	for i, e := range req.Ends {
		mine, _, ok := rec.End(e.Pod, e.IfName)
		if !ok || !mine.Declared {
			return false
		}
		want, err := json.Marshal(req.Specs[i])
		if err != nil {
			return false
		}
		// Both through LinkSpec and back: one canonical form.
		var got, wantSpec netconf.LinkSpec
		if json.Unmarshal(mine.Spec, &got) != nil || json.Unmarshal(want, &wantSpec) != nil {
			return false
		}
		a, errA := json.Marshal(got)
		b, errB := json.Marshal(wantSpec)
		if errA != nil || errB != nil || string(a) != string(b) {
			return false
		}
	}
	return true
}

// ErrNotAnnotated is RemoveLink's refusal of a link the node's
// administrator made (`ratchetctl link add`): only `ratchetctl link del`
// removes it.
var ErrNotAnnotated = errors.New("the link was made by ratchetctl link add, not by annotations: ratchetctl link del removes it")

// RemoveLink removes the link between end and peer that a pod's
// annotation declared (made at a pod's ADD or by ApplyLink): both of its
// ends this node holds and its record. The link at end toward another
// peer is not the declaration's: it is left alone, as is no link at all
// (removal is idempotent). The administrator's link between the two is
// ErrNotAnnotated: who may edit a pod's annotation does not remove what
// the administrator made, possibly in another namespace.
func RemoveLink(ctx context.Context, dir, socket string, end, peer End) error {
	s, err := Open(ctx, dir, socket)
	if err != nil {
		return err
	}
	defer s.Close()
	rec, err := s.st.LinkAt(ctx, end.Pod, end.IfName)
	if err != nil || rec == nil {
		return err
	}
	if _, other, ok := rec.End(end.Pod, end.IfName); !ok || other.Pod != peer.Pod || other.IfName != peer.IfName {
		return nil // the declared link was never made here
	}
	if rec.Added && !rec.Annotated {
		return fmt.Errorf("link %s: %w", shown(rec.ID), ErrNotAnnotated)
	}
	return s.remove(ctx, rec)
}
