package kube

import (
	"context"
	"errors"
	"fmt"

	"github.com/ratchet-cni/ratchet/internal/labop"
	"github.com/ratchet-cni/ratchet/internal/netconf"
)

// LocalLinks are the node's links as its local store (Dir) keeps them,
// changed through the live-lab operations that ratchetctl's link add and
// del run (internal/labop), with ratchetd's Socket for a peer on another
// node, within the network config's Limits.
type LocalLinks struct {
	Dir, Socket string
	Limits      labop.Limits
}

// Links implements Links with labop.NodeLinks.
func (l LocalLinks) Links(ctx context.Context) ([]Link, error) {
	nls, err := labop.NodeLinks(ctx, l.Dir)
	if err != nil {
		return nil, err
	}
	out := make([]Link, len(nls))
	for i, nl := range nls {
		out[i] = Link{LinkView: nl.LinkView, MAC: nl.MAC, VNI: nl.VNI}
	}
	return out, nil
}

// Apply implements Links with labop.ApplyLink.
func (l LocalLinks) Apply(ctx context.Context, pods [2]string, specs [2]netconf.LinkSpec, peerHere bool) error {
	err := labop.ApplyLink(ctx, l.Dir, l.Socket, pods, specs, peerHere, l.Limits)
	if errors.Is(err, labop.ErrNotAttached) {
		return fmt.Errorf("%w: %v", ErrNotAttached, err)
	}
	return err
}

// Remove implements Links with labop.RemoveLink.
func (l LocalLinks) Remove(ctx context.Context, pod, ifName, peerPod, peerIf string) error {
	return labop.RemoveLink(ctx, l.Dir, l.Socket, labop.End{Pod: pod, IfName: ifName}, labop.End{Pod: peerPod, IfName: peerIf})
}
