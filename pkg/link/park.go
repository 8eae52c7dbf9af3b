package link

import (
	"fmt"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
)

// Parking is a namespace where link ends wait for their peer and where two
// waiting ends are stitched into one cable. It uses one netlink handle for
// all of its operations.
type Parking struct {
	NS ns.NetNS
	h  *Handle
	// own says whether h is the Parking's own, to close with it.
	own bool
}

// OpenParking returns the parking operations on n, using k's handle in n;
// with a nil k, the Parking opens a handle of its own. The caller still
// owns n, and must keep it open while it uses the Parking's NS.
func OpenParking(k *Kernel, n ns.NetNS) (*Parking, error) {
	if k != nil {
		h, err := k.Handle(n)
		if err != nil {
			return nil, err
		}
		return &Parking{NS: n, h: h}, nil
	}
	h, err := NewHandle(n)
	if err != nil {
		return nil, err
	}
	return &Parking{NS: n, h: h, own: true}, nil
}

// Close releases the Parking's own handle. A handle of a Kernel is the
// Kernel's: it stays open, for the undo steps of the Kernel's operation,
// until the Kernel is closed.
func (p *Parking) Close() {
	if p.own {
		p.h.Close()
	}
}

// Has reports whether the interface index still exists with that name: an
// index can be reused by a later interface.
func (p *Parking) Has(name string, index int) bool {
	l, err := p.h.LinkByIndex(index)
	return err == nil && l.Attrs().Name == name
}

// SetUp sets the interface administratively up or down. Its veth peer's
// carrier follows: down is an unplugged cable.
func (p *Parking) SetUp(index int, up bool) error {
	// By index alone: a lookup first would cost as much as the change.
	l := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: index}}
	var err error
	if up {
		err = p.h.LinkSetUp(l)
	} else {
		err = p.h.LinkSetDown(l)
	}
	if err != nil && !isGone(err) {
		return fmt.Errorf("set parked ifindex %d up=%v: %w", index, up, err)
	}
	return nil
}

// Stitch joins two parked interfaces back to back (see Stitch).
func (p *Parking) Stitch(a, b int) error { return stitch(p.h, a, b) }

// Kind returns the kind ("veth", "vxlan"...) of the interface at index, or
// "" when there is none.
func (p *Parking) Kind(index int) string {
	l, err := p.h.LinkByIndex(index)
	if err != nil {
		return ""
	}
	return l.Type()
}

// Stitched returns the ifindex the interface at index redirects to, or 0
// (see Stitched).
func (p *Parking) Stitched(index int) (int, error) { return stitchedTo(p.h, index) }

// StitchedListed is Stitched of an interface the caller has just listed
// (Counters, Netdevs), without looking it up again: one request, not two,
// for views of many links at once. An interface gone since reads as not
// stitched.
func (p *Parking) StitchedListed(index int) (int, error) {
	return redirectOf(p.h, &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: index}})
}

// Netdev is a netdev of the parking namespace, as Netdevs lists it.
type Netdev struct {
	Name string
	Kind string
}

// Netdevs lists the namespace's netdevs by ifindex, in one dump: cheaper
// than one lookup per netdev when many are looked at.
func (p *Parking) Netdevs() (map[int]Netdev, error) {
	all, err := p.h.LinkList()
	if err != nil {
		return nil, err
	}
	m := make(map[int]Netdev, len(all))
	for _, l := range all {
		m[l.Attrs().Index] = Netdev{Name: l.Attrs().Name, Kind: l.Type()}
	}
	return m, nil
}

// Count returns how many interfaces of the namespace carry a marker alias:
// the parked ends (and tunnel ends) that take the node's room.
func (p *Parking) Count() (int, error) {
	all, err := p.h.LinkList()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, l := range all {
		if l.Attrs().Alias != "" {
			n++
		}
	}
	return n, nil
}

// RemoveUnless deletes every parked interface that carries a marker alias,
// unless keep accepts the alias. It returns how many it deleted.
func (p *Parking) RemoveUnless(keep func(alias string) bool) (int, error) {
	all, err := p.h.LinkList()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, l := range all {
		alias := l.Attrs().Alias
		if alias == "" || keep(alias) {
			continue
		}
		if err := p.h.LinkDel(l); err != nil && !isGone(err) {
			return n, err
		}
		n++
	}
	return n, nil
}
