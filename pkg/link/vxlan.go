package link

import (
	"context"
	"fmt"
	"net"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/ratchet-cni/ratchet/internal/linkparam"
)

// DefaultVXLANPort is the IANA VXLAN port (the kernel's own default is the
// pre-standard 8472).
const DefaultVXLANPort = linkparam.DefaultVXLANPort

// Vxlan is a VXLAN tunnel end to a fixed remote VTEP. The netdev is born in
// End.NS; its UDP socket and underlay device stay in Underlay.
type Vxlan struct {
	End      Endpoint
	Underlay ns.NetNS
	// Dev is the underlay device; empty means the device of the route to
	// Remote.
	Dev    string
	VNI    int
	Remote net.IP
	// Local is the source address; nil lets the kernel choose.
	Local net.IP
	// Port is the UDP destination port; 0 means DefaultVXLANPort.
	Port   int
	Marker Marker
}

// Kind implements Link.
func (v *Vxlan) Kind() string { return "vxlan" }

// Overhead is what VXLAN encapsulation adds to a packet over an underlay of
// the remote's address family.
func Overhead(remote net.IP) int {
	if remote.To4() == nil {
		return 70
	}
	return 50
}

// Create implements Link. An End.MTU of 0 becomes the underlay MTU less the
// encapsulation overhead.
func (v *Vxlan) Create(ctx context.Context, k *Kernel) error {
	return createChild(ctx, k, v.Underlay, &v.End, v.Marker, func(hu *Handle, attrs netlink.LinkAttrs) (netlink.Link, error) {
		dev, err := v.underlayDev(hu)
		if err != nil {
			return nil, err
		}
		if v.End.MTU == 0 {
			v.End.MTU = dev.Attrs().MTU - Overhead(v.Remote)
			attrs.MTU = v.End.MTU
		}
		return &netlink.Vxlan{
			LinkAttrs:    attrs,
			VxlanId:      v.VNI,
			VtepDevIndex: dev.Attrs().Index,
			SrcAddr:      v.Local,
			Group:        v.Remote,
			Port:         v.port(),
		}, nil
	})
}

// AutoMTU returns the MTU Create gives an End without one: the underlay
// device's MTU less the encapsulation overhead. CHECK compares with it.
func (v *Vxlan) AutoMTU(k *Kernel) (int, error) {
	hu, release, err := acquire(k, v.Underlay)
	if err != nil {
		return 0, err
	}
	defer release()
	dev, err := v.underlayDev(hu)
	if err != nil {
		return 0, err
	}
	return dev.Attrs().MTU - Overhead(v.Remote), nil
}

// Verify implements Link: the tunnel end exists with its VNI, remote and port.
func (v *Vxlan) Verify(ctx context.Context, k *Kernel) error {
	l, err := verifyChild(ctx, k, &v.End, "vxlan", v.Marker)
	if err != nil {
		return err
	}
	got := l.(*netlink.Vxlan)
	where := v.End.String()
	if got.VxlanId != v.VNI {
		return &MismatchError{End: where, What: "VNI", Want: fmt.Sprint(v.VNI), Got: fmt.Sprint(got.VxlanId)}
	}
	if !got.Group.Equal(v.Remote) {
		return &MismatchError{End: where, What: "remote", Want: v.Remote.String(), Got: got.Group.String()}
	}
	if got.Port != v.port() {
		return &MismatchError{End: where, What: "port", Want: fmt.Sprint(v.port()), Got: fmt.Sprint(got.Port)}
	}
	return nil
}

// Remove implements Link.
func (v *Vxlan) Remove(ctx context.Context, k *Kernel) error {
	return removeEnd(k, v.End.NS, v.End.Name, v.Marker)
}

func (v *Vxlan) port() int {
	if v.Port == 0 {
		return DefaultVXLANPort
	}
	return v.Port
}

func (v *Vxlan) underlayDev(hu *Handle) (netlink.Link, error) {
	if v.Dev != "" {
		l, err := linkIn(hu, v.Dev)
		if err == nil && l == nil {
			err = fmt.Errorf("underlay device %q not found", v.Dev)
		}
		return l, err
	}
	routes, err := hu.RouteGet(v.Remote)
	if err != nil || len(routes) == 0 {
		return nil, fmt.Errorf("no route to vxlan remote %s: %v", v.Remote, err)
	}
	return hu.LinkByIndex(routes[0].LinkIndex)
}
