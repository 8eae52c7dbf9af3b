package link

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// A mirror copies every frame that arrives on a parked interface out of
// another interface of the parking namespace: the parked end of a
// collector pod's interface, so that the collector sees the frames its
// pod receives. Mirroring both parked ends of a stitched link copies both
// directions, as each direction arrives on one of them.
//
// The copy is a second node of the stitch's u32 filter (same priority,
// same protocol, so the same classifier instance), at a handle u32 tries
// before the stitch's: its mirred action copies the frame and then
// continues (TC_ACT_UNSPEC), so the classifier goes on to the stitch's
// redirect with the frame unchanged. A separate filter cannot go first:
// the stitch's is at the first priority there is. Stitching again
// replaces only the stitch's node (u32Handle), so the mirror stays; a
// mirror whose target goes loses its device in the kernel, copies
// nothing and still continues, so the stitch is never disturbed.

// mirrorHandle is 800::7ff: in u32's default hash table, in the same
// bucket as u32Handle and ordered before it (u32 keeps a bucket's nodes
// sorted by node id, and tries them in that order).
const mirrorHandle = 0x800<<20 | 0x7ff

// Mirror copies every frame arriving on the parked interface at index out
// of the interface at to, before any stitch of index redirects it; the
// stitch's traffic is unchanged. Mirroring again replaces the target. An
// interface that is not stitched (yet) gets the ingress qdisc a stitch
// would add.
func (p *Parking) Mirror(index, to int) error {
	switch {
	case index == to:
		return fmt.Errorf("mirror parked ifindex %d to itself", index)
	case to <= 0:
		return fmt.Errorf("mirror parked ifindex %d to ifindex %d: not an interface", index, to)
	}
	if err := addIngress(p.h, index); err != nil {
		return err
	}
	if err := p.h.FilterReplace(mirrorFilter(index, to)); err != nil {
		return fmt.Errorf("mirror parked ifindex %d to %d: %w", index, to, err)
	}
	return nil
}

func mirrorFilter(index, to int) *netlink.U32 {
	return &netlink.U32{
		FilterAttrs: netlink.FilterAttrs{LinkIndex: index, Parent: netlink.MakeHandle(0xffff, 0),
			Priority: 1, Handle: mirrorHandle, Protocol: unix.ETH_P_ALL},
		Actions: []netlink.Action{&netlink.MirredAction{
			// Continue: the classifier tries its next node, the stitch.
			ActionAttrs:  netlink.ActionAttrs{Action: netlink.TC_ACT_UNSPEC},
			MirredAction: netlink.TCA_EGRESS_MIRROR,
			Ifindex:      to,
		}},
	}
}

// Unmirror stops the mirror of the parked interface at index; its stitch
// stays. An interface with no mirror, or one that is gone, is not an
// error.
func (p *Parking) Unmirror(index int) error {
	to, err := p.Mirrored(index)
	if err != nil || to == 0 {
		return err
	}
	f := mirrorFilter(index, to)
	f.Actions = nil
	// Mirrored found the node, so the delete names one that was there: the
	// kernel answers ENOENT when it went since (the interface's other
	// ingress nodes stay), ENODEV when the interface did. EINVAL is not
	// "no mirror" (the kernel's answer to a delete whose protocol or
	// parent matches no classifier): it is this delete's error.
	if err := p.h.FilterDel(f); err != nil && !errors.Is(err, unix.ENOENT) && !isGone(err) {
		return fmt.Errorf("unmirror parked ifindex %d: %w", index, err)
	}
	return nil
}

// Mirrored returns the ifindex the parked interface at index mirrors its
// frames to, 0 when it has no mirror (or is gone), and -1 when its
// mirror's target went (the kernel drops the device from the action).
func (p *Parking) Mirrored(index int) (int, error) {
	filters, err := p.h.FilterList(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: index}}, netlink.MakeHandle(0xffff, 0))
	if err != nil {
		if isGone(err) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return 0, nil // gone, or no ingress qdisc: no mirror
		}
		return 0, fmt.Errorf("list filters of parked ifindex %d: %w", index, err)
	}
	for _, f := range filters {
		u, ok := f.(*netlink.U32)
		if !ok || u.Handle != mirrorHandle {
			continue
		}
		for _, a := range u.Actions {
			if m, ok := a.(*netlink.MirredAction); ok && m.MirredAction == netlink.TCA_EGRESS_MIRROR {
				if m.Ifindex == 0 {
					return -1, nil
				}
				return m.Ifindex, nil
			}
		}
	}
	return 0, nil
}

// VerifyMirror checks that the parked interface at index mirrors to the
// interface at to (0: that it has no mirror); anything else is a
// *MismatchError.
func (p *Parking) VerifyMirror(index, to int) error {
	got, err := p.Mirrored(index)
	if err != nil {
		return err
	}
	if got == to {
		return nil
	}
	show := func(i int) string {
		switch i {
		case 0:
			return "none"
		case -1:
			return "a gone interface"
		}
		return fmt.Sprintf("ifindex %d", i)
	}
	return &MismatchError{End: fmt.Sprintf("parked ifindex %d", index), What: "mirror", Want: show(to), Got: show(got)}
}
