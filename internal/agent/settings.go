package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ratchet-cni/ratchet/internal/agentapi"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// A cross-node link's run-time settings (a pulled cable, impairments) are
// kept in the cluster with the link, in the order of the link id's ends;
// `ratchetctl link` on any node changes them through its node's agent
// (linkSettings), and each agent applies them on its own parked end in
// its reconcile (reconcileEnd): a pull sets its end down, and the
// impairment toward its local pod shapes its end's egress. So each node
// touches only its own kernel, and a node a pod moves to applies them
// before it plugs the new end in.

// linkSettings answers OpLinkSettings: it reads a link's settings, or
// writes them if they are still at the revision the change was based on,
// relative to the end the request names.
func (a *Agent) linkSettings(ctx context.Context, req *agentapi.Request) *agentapi.Response {
	podA, ifA, podB, ifB, ok := store.ParseLinkID(req.LinkID)
	if !ok {
		return failed(types.ErrInvalidNetworkConfig, fmt.Sprintf("linkID %q: not a link id", req.LinkID))
	}
	var mine int
	switch {
	case req.Pod == podA && req.IfName == ifA:
	case req.Pod == podB && req.IfName == ifB:
		mine = 1
	default:
		return failed(types.ErrInvalidNetworkConfig, fmt.Sprintf("end %s:%s: not an end of link %s", req.Pod, req.IfName, req.LinkID))
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.CallTimeout)
	defer cancel()
	if req.Settings == nil {
		s, rev, err := a.reg.LinkSettings(ctx, req.LinkID)
		if err != nil {
			return storeFailed(err)
		}
		resp := &agentapi.Response{Revision: rev}
		if s != nil {
			resp.Settings = agentapi.Relative(s.Pulled, s.Toward, mine)
		}
		return resp
	}
	s := &store.Settings{}
	s.Pulled, s.Toward = req.Settings.Ordered(mine)
	for _, t := range s.Toward {
		if t == nil {
			continue
		}
		if err := t.Validate(); err != nil {
			return failed(types.ErrInvalidNetworkConfig, "settings: "+err.Error())
		}
	}
	if err := a.reg.PutLinkSettings(ctx, req.LinkID, s, req.Revision); err != nil {
		return storeFailed(err)
	}
	// The watch brings the change back, a round trip later: this node's
	// end is looked at at once.
	a.markDirty(endKey(podA, ifA))
	a.markDirty(endKey(podB, ifB))
	return &agentapi.Response{}
}

// storeFailed is the answer to a request the cluster store failed.
func storeFailed(err error) *agentapi.Response {
	switch {
	case errors.Is(err, store.ErrSettingsChanged):
		return failed(types.ErrTryAgainLater, err.Error()+" (on another node?): run the command again")
	case errors.Is(err, store.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded):
		return failed(types.ErrTryAgainLater, "cluster store unreachable: "+err.Error())
	}
	return failed(102, err.Error())
}

// inRecordOrder returns s, kept in the order of the link id's ends, in the
// order of rec's ends (the same, for records the plugin makes; a record
// whose id does not tell its ends takes them as they are).
func inRecordOrder(rec *store.LinkRecord, s *store.Settings) *store.Settings {
	podA, ifA, _, _, ok := store.ParseLinkID(rec.ID)
	if s == nil || !ok || rec.Ends[0].Pod == podA && rec.Ends[0].IfName == ifA {
		return s
	}
	c := *s
	c.Toward[0], c.Toward[1] = s.Toward[1], s.Toward[0]
	return &c
}

// markLink marks both ends of link id dirty.
func (a *Agent) markLink(id string) {
	if podA, ifA, podB, ifB, ok := store.ParseLinkID(id); ok {
		a.markDirty(endKey(podA, ifA))
		a.markDirty(endKey(podB, ifB))
	}
}
