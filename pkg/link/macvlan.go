package link

import (
	"context"
	"fmt"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/ratchet-cni/ratchet/internal/linkparam"
)

// MacvlanModes are the macvlan modes by name (the names are
// linkparam.MacvlanModes).
var MacvlanModes = map[string]netlink.MacvlanMode{
	"bridge":   netlink.MACVLAN_MODE_BRIDGE,
	"private":  netlink.MACVLAN_MODE_PRIVATE,
	"vepa":     netlink.MACVLAN_MODE_VEPA,
	"passthru": netlink.MACVLAN_MODE_PASSTHRU,
}

// Macvlan is a macvlan interface born in End.NS on top of Master, a device
// in Underlay.
type Macvlan struct {
	End      Endpoint
	Underlay ns.NetNS
	Master   string
	// Mode is a key of MacvlanModes; empty means bridge.
	Mode   string
	Marker Marker
}

// Kind implements Link.
func (m *Macvlan) Kind() string { return "macvlan" }

// Create implements Link.
func (m *Macvlan) Create(ctx context.Context, k *Kernel) error {
	mode, ok := MacvlanModes[m.mode()]
	if !ok {
		return fmt.Errorf("unknown macvlan mode %q", m.Mode)
	}
	return createChild(ctx, k, m.Underlay, &m.End, m.Marker, func(hu *Handle, attrs netlink.LinkAttrs) (netlink.Link, error) {
		var err error
		if attrs.ParentIndex, err = parentIndex(hu, m.Master); err != nil {
			return nil, err
		}
		return &netlink.Macvlan{LinkAttrs: attrs, Mode: mode}, nil
	})
}

// Verify implements Link.
func (m *Macvlan) Verify(ctx context.Context, k *Kernel) error {
	l, err := verifyChild(ctx, k, &m.End, "macvlan", m.Marker)
	if err != nil {
		return err
	}
	if got := l.(*netlink.Macvlan).Mode; got != MacvlanModes[m.mode()] {
		return &MismatchError{End: m.End.String(), What: "macvlan mode", Want: m.mode(), Got: fmt.Sprint(got)}
	}
	return nil
}

// Remove implements Link.
func (m *Macvlan) Remove(ctx context.Context, k *Kernel) error {
	return removeEnd(k, m.End.NS, m.End.Name, m.Marker)
}

func (m *Macvlan) mode() string {
	if m.Mode == "" {
		return linkparam.DefaultMacvlanMode
	}
	return m.Mode
}
