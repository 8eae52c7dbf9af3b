package link

import (
	"context"
	"fmt"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
)

// Vlan is an 802.1Q sub-interface born in End.NS on top of Parent, a device
// in Underlay.
type Vlan struct {
	End      Endpoint
	Underlay ns.NetNS
	Parent   string
	ID       int
	Marker   Marker
}

// Kind implements Link.
func (v *Vlan) Kind() string { return "vlan" }

// Create implements Link.
func (v *Vlan) Create(ctx context.Context, k *Kernel) error {
	return createChild(ctx, k, v.Underlay, &v.End, v.Marker, func(hu *Handle, attrs netlink.LinkAttrs) (netlink.Link, error) {
		var err error
		if attrs.ParentIndex, err = parentIndex(hu, v.Parent); err != nil {
			return nil, err
		}
		return &netlink.Vlan{LinkAttrs: attrs, VlanId: v.ID}, nil
	})
}

// Verify implements Link.
func (v *Vlan) Verify(ctx context.Context, k *Kernel) error {
	l, err := verifyChild(ctx, k, &v.End, "vlan", v.Marker)
	if err != nil {
		return err
	}
	if got := l.(*netlink.Vlan).VlanId; got != v.ID {
		return &MismatchError{End: v.End.String(), What: "vlan id", Want: fmt.Sprint(v.ID), Got: fmt.Sprint(got)}
	}
	return nil
}

// Remove implements Link.
func (v *Vlan) Remove(ctx context.Context, k *Kernel) error {
	return removeEnd(k, v.End.NS, v.End.Name, v.Marker)
}
