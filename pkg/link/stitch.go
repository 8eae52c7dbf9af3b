package link

import (
	"errors"
	"fmt"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Stitch joins two interfaces of one namespace back to back, as
// containerlab's "stitch" does: a tc ingress filter on each redirects every
// frame it receives out of the other. Two veth pairs stitched through their
// ends in a parking namespace form one cable between their other ends,
// and nothing is moved between namespaces. Stitching again replaces the
// filters, so an end can be re-stitched to a new peer. k holds the handles
// to use; nil means a one-shot handle.
func Stitch(k *Kernel, n ns.NetNS, a, b int) error {
	h, release, err := acquire(k, n)
	if err != nil {
		return err
	}
	defer release()
	return stitch(h, a, b)
}

func stitch(h *Handle, a, b int) error {
	for _, pair := range [][2]int{{a, b}, {b, a}} {
		if err := redirect(h, pair[0], pair[1]); err != nil {
			return err
		}
	}
	return nil
}

// redirect sends every frame arriving on from out of to.
func redirect(h *Handle, from, to int) error {
	if err := addIngress(h, from); err != nil {
		return err
	}
	filter := &netlink.U32{
		FilterAttrs: netlink.FilterAttrs{LinkIndex: from, Parent: netlink.MakeHandle(0xffff, 0),
			Priority: 1, Handle: u32Handle, Protocol: unix.ETH_P_ALL},
		Actions: []netlink.Action{&netlink.MirredAction{
			ActionAttrs:  netlink.ActionAttrs{Action: netlink.TC_ACT_STOLEN},
			MirredAction: netlink.TCA_EGRESS_REDIR,
			Ifindex:      to,
		}},
	}
	if err := h.FilterReplace(filter); err != nil {
		return fmt.Errorf("redirect ifindex %d to %d: %w", from, to, err)
	}
	return nil
}

// addIngress gives the interface at index the ingress qdisc that stitch
// and mirror filters hang from, unless it has it.
func addIngress(h *Handle, index int) error {
	ingress := &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: index, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_INGRESS}}
	// The kernel refuses to "replace" an ingress qdisc with itself.
	if err := h.QdiscAdd(ingress); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("ingress qdisc on ifindex %d: %w", index, err)
	}
	return nil
}

// Stitched returns the ifindex the interface at index redirects to, or 0.
// k holds the handles to use; nil means a one-shot handle.
func Stitched(k *Kernel, n ns.NetNS, index int) (int, error) {
	h, release, err := acquire(k, n)
	if err != nil {
		return 0, err
	}
	defer release()
	return stitchedTo(h, index)
}

func stitchedTo(h *Handle, index int) (int, error) {
	l, err := h.LinkByIndex(index)
	if err != nil {
		return 0, err
	}
	return redirectOf(h, l)
}

// redirectOf returns the ifindex l's ingress filter redirects to, or 0.
// Only l's index is read.
func redirectOf(h *Handle, l netlink.Link) (int, error) {
	filters, err := h.FilterList(l, netlink.MakeHandle(0xffff, 0))
	if err != nil {
		return 0, nil // no ingress qdisc: not stitched
	}
	for _, f := range filters {
		if u, ok := f.(*netlink.U32); ok {
			for _, a := range u.Actions {
				if m, ok := a.(*netlink.MirredAction); ok && m.MirredAction == netlink.TCA_EGRESS_REDIR {
					return m.Ifindex, nil
				}
			}
		}
	}
	return 0, nil
}

// u32Handle is 800::800, a node of u32's default hash table: a fixed
// handle so that stitching again replaces the filter instead of adding one.
// A mirror's node (mirrorHandle) sorts before it, so that it copies first.
const u32Handle = 0x800<<20 | 0x800
