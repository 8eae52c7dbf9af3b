package link

import (
	"context"
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
)

// Veth is a veth pair with end A in A.NS and end B in B.NS. Both ends are
// born in their namespaces by one request; nothing is moved.
type Veth struct {
	A, B   Endpoint
	Marker Marker
}

// Kind implements Link.
func (v *Veth) Kind() string { return "veth" }

// Create implements Link. It fills in A.MAC and B.MAC when they were unset.
func (v *Veth) Create(ctx context.Context, k *Kernel) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	ha, hb, release, err := v.handles(k)
	if err != nil {
		return err
	}
	defer release()

	fillMAC(&v.A)
	fillMAC(&v.B)
	veth := &netlink.Veth{
		LinkAttrs:        newAttrs(&v.A, v.Marker),
		PeerName:         v.B.Name,
		PeerMTU:          uint32(v.B.MTU),
		PeerHardwareAddr: v.B.MAC,
		PeerNamespace:    netlink.NsFd(v.B.NS.Fd()),
	}
	if err := ha.LinkAdd(veth); err != nil {
		return whichExists(k, fmt.Errorf("create veth %s <-> %s: %w", &v.A, &v.B, err), &v.A, &v.B)
	}
	created := false
	defer func() {
		if !created {
			// The ends may not carry their marker yet: delete by name.
			err = errors.Join(err, discard(ha, v.A.Name), discard(hb, v.B.Name))
		}
	}()
	if err := k.Step("create"); err != nil {
		return err
	}
	// B first: when A goes up its peer is already up, so A comes up with
	// its carrier in one transition instead of two.
	peer, err := hb.LinkByName(v.B.Name)
	if err != nil {
		return fmt.Errorf("%s: %w", &v.B, err)
	}
	if err := configure(k, hb, &v.B, peer, v.Marker, false); err != nil {
		return err
	}
	if err := configure(k, ha, &v.A, veth, v.Marker, true); err != nil {
		return err
	}
	created = true
	return nil
}

// Verify implements Link: both ends exist, are configured, and are each
// other's peer.
func (v *Veth) Verify(ctx context.Context, k *Kernel) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ha, hb, release, err := v.handles(k)
	if err != nil {
		return err
	}
	defer release()
	la, err := verifyEnd(ha, &v.A, "veth", v.Marker)
	if err != nil {
		return err
	}
	lb, err := verifyEnd(hb, &v.B, "veth", v.Marker)
	if err != nil {
		return err
	}
	if la.Attrs().ParentIndex != lb.Attrs().Index || lb.Attrs().ParentIndex != la.Attrs().Index {
		return &MismatchError{End: v.A.String(), What: "veth peer is not " + v.B.String()}
	}
	return nil
}

// Remove implements Link. Deleting one end of a veth deletes both; B is
// tried as well in case A was already gone.
func (v *Veth) Remove(ctx context.Context, k *Kernel) error {
	errA := removeEnd(k, v.A.NS, v.A.Name, v.Marker)
	errB := removeEnd(k, v.B.NS, v.B.Name, v.Marker)
	if errA != nil {
		return errA
	}
	return errB
}

// handles returns the handles of A's and B's namespaces: one handle of k
// when both are in one namespace.
func (v *Veth) handles(k *Kernel) (ha, hb *Handle, release func(), err error) {
	ha, releaseA, err := acquire(k, v.A.NS)
	if err != nil {
		return nil, nil, nil, err
	}
	hb, releaseB, err := acquire(k, v.B.NS)
	if err != nil {
		releaseA()
		return nil, nil, nil, err
	}
	return ha, hb, func() { releaseA(); releaseB() }, nil
}
