package testutil

import (
	"fmt"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// LAN joins simulated nodes on one underlay: a bridge in a namespace of
// its own, and in each node an interface eth0 plugged into it, addressed
// 192.0.2.<i+1>/24 for nodes[i], with a default route through it (so
// that "the default route's device" means what it does on a real node),
// and 2001:db8:ffff::<i+1>/64 for an IPv6 underlay.
// Everything goes with the namespaces when the test ends.
func LAN(t testing.TB, nodes ...ns.NetNS) {
	t.Helper()
	lan := NewNS(t)
	hl := Handle(t, lan)
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}
	if err := hl.LinkAdd(br); err != nil {
		t.Fatalf("lan bridge: %v", err)
	}
	if err := hl.LinkSetUp(br); err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		port := fmt.Sprintf("n%d", i)
		attrs := netlink.NewLinkAttrs()
		attrs.Name, attrs.MasterIndex = port, br.Index
		veth := &netlink.Veth{LinkAttrs: attrs, PeerName: "eth0", PeerNamespace: netlink.NsFd(n.Fd())}
		if err := hl.LinkAdd(veth); err != nil {
			t.Fatalf("lan port %s: %v", port, err)
		}
		if err := hl.LinkSetUp(veth); err != nil {
			t.Fatal(err)
		}
		hn := Handle(t, n)
		eth, err := hn.LinkByName("eth0")
		if err != nil {
			t.Fatal(err)
		}
		for _, cidr := range []string{fmt.Sprintf("192.0.2.%d/24", i+1), fmt.Sprintf("2001:db8:ffff::%d/64", i+1)} {
			if err := hn.AddrAdd(eth, &netlink.Addr{IPNet: MustCIDR(cidr), Flags: unix.IFA_F_NODAD}); err != nil {
				t.Fatal(err)
			}
		}
		lo, err := hn.LinkByName("lo")
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range []netlink.Link{eth, lo} {
			if err := hn.LinkSetUp(l); err != nil {
				t.Fatal(err)
			}
		}
		if err := hn.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Gw: MustCIDR("192.0.2.254/32").IP}); err != nil {
			t.Fatalf("default route in node %d: %v", i, err)
		}
	}
}
