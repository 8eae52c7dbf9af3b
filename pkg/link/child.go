package link

import (
	"context"
	"errors"
	"fmt"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// childSpec builds the netdev of a kind that hangs off a device in the
// underlay namespace (vxlan, macvlan, vlan), given the handle bound to the
// underlay and the attributes the pod end is born with.
type childSpec func(hu *Handle, attrs netlink.LinkAttrs) (netlink.Link, error)

// createChild creates end's netdev through a socket in underlay, naming
// end.NS as its namespace: the kernel then creates it in the pod directly,
// with its parent (or tunnel socket) left on the node, and nothing is moved.
func createChild(ctx context.Context, k *Kernel, underlay ns.NetNS, end *Endpoint, m Marker, build childSpec) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	hu, releaseU, err := acquire(k, underlay)
	if err != nil {
		return err
	}
	defer releaseU()
	hp, releaseP, err := acquire(k, end.NS)
	if err != nil {
		return err
	}
	defer releaseP()

	fillMAC(end)
	attrs := newAttrs(end, m)
	attrs.Namespace = netlink.NsFd(end.NS.Fd())
	l, err := build(hu, attrs)
	if err != nil {
		return err
	}
	if err := hu.LinkAdd(l); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) {
			return fmt.Errorf("create %s %s: this kernel has no %s driver: %w", l.Type(), end, l.Type(), err)
		}
		return whichExists(k, fmt.Errorf("create %s %s: %w", l.Type(), end, err), end)
	}
	created := false
	defer func() {
		if !created {
			err = errors.Join(err, discard(hp, end.Name))
		}
	}()
	// The index netlink filled in after LinkAdd was looked up in the
	// underlay; the new netdev is in the pod.
	inPod, err := hp.LinkByName(end.Name)
	if err != nil {
		return fmt.Errorf("%s: %w", end, err)
	}
	if err := k.Step("create"); err != nil {
		return err
	}
	if err := configure(k, hp, end, inPod, m, true); err != nil {
		return err
	}
	created = true
	return nil
}

// verifyChild verifies end in its namespace and returns its netdev for
// kind-specific checks.
func verifyChild(ctx context.Context, k *Kernel, end *Endpoint, kind string, m Marker) (netlink.Link, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	hp, release, err := acquire(k, end.NS)
	if err != nil {
		return nil, err
	}
	defer release()
	return verifyEnd(hp, end, kind, m)
}

// parentIndex resolves a parent device by name in the underlay namespace.
func parentIndex(hu *Handle, name string) (int, error) {
	l, err := linkIn(hu, name)
	if err != nil {
		return 0, err
	}
	if l == nil {
		return 0, fmt.Errorf("parent device %q not found", name)
	}
	return l.Attrs().Index, nil
}

// DeviceMTU returns the MTU of the named device in n: what a macvlan or
// vlan end created without an MTU inherits from its parent.
func DeviceMTU(k *Kernel, n ns.NetNS, name string) (int, error) {
	h, release, err := acquire(k, n)
	if err != nil {
		return 0, err
	}
	defer release()
	l, err := linkIn(h, name)
	if err != nil {
		return 0, err
	}
	if l == nil {
		return 0, fmt.Errorf("device %q not found in %s", name, n.Path())
	}
	return l.Attrs().MTU, nil
}
