package kube

import (
	"context"
	"errors"
	"fmt"

	"github.com/ratchet-cni/ratchet/internal/ctl"
	"github.com/ratchet-cni/ratchet/internal/netconf"
)

// LocalLinks are the node's links as its local store (Dir) keeps them,
// changed through the live-lab operations of ratchetctl (link add and
// del: internal/ctl), with ratchetd's Socket for a peer on another node.
type LocalLinks struct {
	Dir, Socket string
}

// Links implements Links with ctl.NodeLinks.
func (l LocalLinks) Links(ctx context.Context) ([]Link, error) {
	nls, err := ctl.NodeLinks(ctx, l.Dir)
	if err != nil {
		return nil, err
	}
	out := make([]Link, len(nls))
	for i, nl := range nls {
		out[i] = Link{LinkView: nl.LinkView, MAC: nl.MAC, VNI: nl.VNI}
	}
	return out, nil
}

// Apply implements Links with ctl.ApplyLink.
func (l LocalLinks) Apply(ctx context.Context, pods [2]string, specs [2]netconf.LinkSpec, peerHere bool) error {
	err := ctl.ApplyLink(ctx, l.Dir, l.Socket, pods, specs, peerHere)
	if errors.Is(err, ctl.ErrNotAttached) {
		return fmt.Errorf("%w: %v", ErrNotAttached, err)
	}
	return err
}

// Remove implements Links with ctl.RemoveLink.
func (l LocalLinks) Remove(ctx context.Context, pod, ifName string) error {
	return ctl.RemoveLink(ctx, l.Dir, l.Socket, pod, ifName)
}
