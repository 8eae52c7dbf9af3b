package link_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ratchet-cni/ratchet/internal/testutil"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

var ctx = context.Background()

func marker(name string) link.Marker {
	return link.Marker{Alias: "ratchet-test:" + name, Group: 4242}
}

func vethPair(a, b ns.NetNS) *link.Veth {
	return &link.Veth{
		A: link.Endpoint{NS: a, Name: "in1", MTU: 1400,
			Addrs:  []*net.IPNet{testutil.MustCIDR("192.0.2.1/24"), testutil.MustCIDR("2001:db8:1::1/64")},
			MAC:    net.HardwareAddr{0x02, 0, 0, 0, 0, 1},
			Routes: []link.Route{{Dst: testutil.MustCIDR("198.51.100.0/24"), GW: net.ParseIP("192.0.2.2")}}},
		B: link.Endpoint{NS: b, Name: "in2", MTU: 1400,
			Addrs: []*net.IPNet{testutil.MustCIDR("192.0.2.2/24"), testutil.MustCIDR("2001:db8:1::2/64"), testutil.MustCIDR("198.51.100.1/32")}},
		Marker: marker("v1"),
	}
}

func TestVethCarriesIPv4AndIPv6(t *testing.T) {
	a, b := testutil.NewNS(t), testutil.NewNS(t)
	v := vethPair(a, b)
	if err := v.Create(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(ctx, nil); err != nil {
		t.Fatalf("verify after create: %v", err)
	}
	if v.B.MAC == nil || v.B.MAC[0]&1 != 0 || v.B.MAC[0]&2 == 0 {
		t.Fatalf("peer MAC %v is not a filled-in local unicast address", v.B.MAC)
	}
	testutil.MustPing(t, a, "192.0.2.2")
	testutil.MustPing(t, a, "2001:db8:1::2")
	testutil.MustPing(t, a, "198.51.100.1") // through the route via 192.0.2.2
	l, err := testutil.Handle(t, a).LinkByName("in1")
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Attrs(); got.MTU != 1400 || got.HardwareAddr.String() != "02:00:00:00:00:01" || got.Group != 4242 || got.Alias != "ratchet-test:v1" {
		t.Fatalf("in1 attrs: mtu %d mac %s group %d alias %q", got.MTU, got.HardwareAddr, got.Group, got.Alias)
	}
	if err := v.Remove(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if left := append(testutil.Links(t, a), testutil.Links(t, b)...); len(left) != 0 {
		t.Fatalf("left after remove: %v", left)
	}
	if err := v.Remove(ctx, nil); err != nil {
		t.Fatalf("second remove: %v", err)
	}
}

func TestVethVerifyDetectsDrift(t *testing.T) {
	cases := []struct {
		name  string
		drift func(h *netlink.Handle, l netlink.Link) error
		want  string
	}{
		{"deleted", func(h *netlink.Handle, l netlink.Link) error { return h.LinkDel(l) }, "missing"},
		{"down", func(h *netlink.Handle, l netlink.Link) error { return h.LinkSetDown(l) }, "down"},
		{"readdressed", func(h *netlink.Handle, l netlink.Link) error {
			return h.AddrDel(l, &netlink.Addr{IPNet: testutil.MustCIDR("192.0.2.1/24")})
		}, "address 192.0.2.1/24"},
		{"mtu", func(h *netlink.Handle, l netlink.Link) error { return h.LinkSetMTU(l, 1300) }, "MTU"},
		{"foreign", func(h *netlink.Handle, l netlink.Link) error { return h.LinkSetAlias(l, "someone-else") }, "marker"},
		{"route", func(h *netlink.Handle, l netlink.Link) error {
			return h.RouteDel(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: testutil.MustCIDR("198.51.100.0/24"), Gw: net.ParseIP("192.0.2.2")})
		}, "route"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, b := testutil.NewNS(t), testutil.NewNS(t)
			v := vethPair(a, b)
			if err := v.Create(ctx, nil); err != nil {
				t.Fatal(err)
			}
			h := testutil.Handle(t, a)
			l, err := h.LinkByName("in1")
			if err != nil {
				t.Fatal(err)
			}
			if err := c.drift(h, l); err != nil {
				t.Fatal(err)
			}
			err = v.Verify(ctx, nil)
			var mismatch *link.MismatchError
			if !errors.As(err, &mismatch) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("verify after %s: got %v, want a mismatch mentioning %q", c.name, err, c.want)
			}
		})
	}
}

func TestVethNameTaken(t *testing.T) {
	a, b := testutil.NewNS(t), testutil.NewNS(t)
	first := &link.Veth{A: link.Endpoint{NS: a, Name: "x1"}, B: link.Endpoint{NS: b, Name: "in2"}, Marker: marker("other")}
	if err := first.Create(ctx, nil); err != nil {
		t.Fatal(err)
	}
	err := vethPair(a, b).Create(ctx, nil)
	var exists *link.ExistsError
	if !errors.As(err, &exists) || exists.Name != "in2" || exists.Netns != b.Path() {
		t.Fatalf("got %v, want ExistsError for in2 in %s", err, b.Path())
	}
	if got := testutil.Links(t, a); !slices.Equal(got, []string{"x1"}) {
		t.Fatalf("links in a after failed create: %v", got)
	}
}

// TestCreateFailureLeavesNothing fails every step of Create in turn.
func TestCreateFailureLeavesNothing(t *testing.T) {
	injected := errors.New("injected")
	for k := 1; ; k++ {
		a, b := testutil.NewNS(t), testutil.NewNS(t)
		calls := 0
		kernel := link.NewKernel()
		kernel.Fault = func(step string) error {
			calls++
			if calls == k {
				return injected
			}
			return nil
		}
		v := vethPair(a, b)
		err := v.Create(ctx, kernel)
		kernel.Close()
		if calls < k {
			if err != nil {
				t.Fatal(err)
			}
			if k < 9 {
				t.Fatalf("only %d steps seen", k-1)
			}
			return
		}
		if !errors.Is(err, injected) {
			t.Fatalf("step %d: got %v, want the injected error", k, err)
		}
		if left := append(testutil.Links(t, a), testutil.Links(t, b)...); len(left) != 0 {
			t.Fatalf("failure at step %d left %v", k, left)
		}
	}
}

func TestVxlanBetweenTwoNodes(t *testing.T) {
	nodeA, nodeB := testutil.NewNS(t), testutil.NewNS(t)
	testutil.Underlay(t, nodeA, nodeB, "underlay0")
	podA, podB := testutil.NewNS(t), testutil.NewNS(t)
	tunnel := func(pod, node ns.NetNS, self, remote, v6 string) *link.Vxlan {
		return &link.Vxlan{
			End:      link.Endpoint{NS: pod, Name: "vx0", Addrs: []*net.IPNet{testutil.MustCIDR(self), testutil.MustCIDR(v6)}},
			Underlay: node, VNI: 5001, Remote: net.ParseIP(remote), Port: 4790, Marker: marker("vx"),
		}
	}
	ta := tunnel(podA, nodeA, "203.0.113.1/24", "192.0.2.2", "2001:db8:2::1/64")
	tb := tunnel(podB, nodeB, "203.0.113.2/24", "192.0.2.1", "2001:db8:2::2/64")
	tb.Dev = "underlay0"
	for _, tun := range []*link.Vxlan{ta, tb} {
		if err := tun.Create(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if err := tun.Verify(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if tun.End.MTU != 1450 {
			t.Fatalf("automatic MTU %d, want 1500-50", tun.End.MTU)
		}
	}
	if got := testutil.Links(t, nodeA); !slices.Equal(got, []string{"underlay0"}) {
		t.Fatalf("node A holds %v: the tunnel end must be born in the pod", got)
	}
	testutil.MustPing(t, podA, "203.0.113.2")
	testutil.MustPing(t, podA, "2001:db8:2::2")

	wrong := *ta
	wrong.VNI = 5002
	if err := wrong.Verify(ctx, nil); err == nil || !strings.Contains(err.Error(), "VNI") {
		t.Fatalf("verify with another VNI: %v", err)
	}
	wrong = *ta
	wrong.Remote = net.ParseIP("192.0.2.9")
	if err := wrong.Verify(ctx, nil); err == nil || !strings.Contains(err.Error(), "remote") {
		t.Fatalf("verify with another remote: %v", err)
	}
	if err := ta.Remove(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if left := testutil.Links(t, podA); len(left) != 0 {
		t.Fatalf("left in pod A: %v", left)
	}
}

func TestVxlanIPv6Underlay(t *testing.T) {
	nodeA, nodeB := testutil.NewNS(t), testutil.NewNS(t)
	testutil.Underlay(t, nodeA, nodeB, "underlay0")
	podA, podB := testutil.NewNS(t), testutil.NewNS(t)
	ta := &link.Vxlan{End: link.Endpoint{NS: podA, Name: "vx0", Addrs: []*net.IPNet{testutil.MustCIDR("203.0.113.1/24")}},
		Underlay: nodeA, VNI: 77, Remote: net.ParseIP("2001:db8:ffff::2"), Marker: marker("vx6")}
	tb := &link.Vxlan{End: link.Endpoint{NS: podB, Name: "vx0", Addrs: []*net.IPNet{testutil.MustCIDR("203.0.113.2/24")}},
		Underlay: nodeB, VNI: 77, Remote: net.ParseIP("2001:db8:ffff::1"), Marker: marker("vx6")}
	for _, tun := range []*link.Vxlan{ta, tb} {
		if err := tun.Create(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	if ta.End.MTU != 1430 {
		t.Fatalf("automatic MTU over IPv6 %d, want 1500-70", ta.End.MTU)
	}
	testutil.MustPing(t, podA, "203.0.113.2")
}

func TestMacvlanOnNodeDevice(t *testing.T) {
	node, peer := testutil.NewNS(t), testutil.NewNS(t)
	testutil.Underlay(t, node, peer, "parent0") // this kernel has no dummy driver: a veth end is the parent
	pod1, pod2 := testutil.NewNS(t), testutil.NewNS(t)
	m1 := &link.Macvlan{End: link.Endpoint{NS: pod1, Name: "mv0", Addrs: []*net.IPNet{testutil.MustCIDR("192.0.2.11/24")}},
		Underlay: node, Master: "parent0", Marker: marker("mv1")}
	m2 := &link.Macvlan{End: link.Endpoint{NS: pod2, Name: "mv0", Addrs: []*net.IPNet{testutil.MustCIDR("192.0.2.12/24")}},
		Underlay: node, Master: "parent0", Mode: "bridge", Marker: marker("mv2")}
	for _, m := range []*link.Macvlan{m1, m2} {
		if err := m.Create(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if err := m.Verify(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	testutil.MustPing(t, pod1, "192.0.2.12") // macvlan bridge mode, pod to pod
	testutil.MustPing(t, pod1, "192.0.2.2")  // out through the parent to the other side
	bad := &link.Macvlan{End: link.Endpoint{NS: pod1, Name: "mv1"}, Underlay: node, Master: "nope0", Marker: marker("mv3")}
	if err := bad.Create(ctx, nil); err == nil || !strings.Contains(err.Error(), "nope0") {
		t.Fatalf("macvlan on a missing master: %v", err)
	}
}

func TestVlan(t *testing.T) {
	node, peer := testutil.NewNS(t), testutil.NewNS(t)
	testutil.Underlay(t, node, peer, "parent0")
	pod := testutil.NewNS(t)
	v := &link.Vlan{End: link.Endpoint{NS: pod, Name: "vl0", Addrs: []*net.IPNet{testutil.MustCIDR("198.51.100.1/24")}},
		Underlay: node, Parent: "parent0", ID: 100, Marker: marker("vl")}
	err := v.Create(ctx, nil)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOENT) && strings.Contains(err.Error(), "vlan") {
		t.Skipf("this kernel has no vlan driver (%v)", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(ctx, nil); err != nil {
		t.Fatal(err)
	}
}

func TestRemoveOwnedDeletesTheGroupOnly(t *testing.T) {
	a, b := testutil.NewNS(t), testutil.NewNS(t)
	for i, name := range []string{"e1", "e2", "e3"} {
		v := &link.Veth{A: link.Endpoint{NS: a, Name: name}, B: link.Endpoint{NS: b, Name: name},
			Marker: link.Marker{Alias: "ratchet-test:own:" + name, Group: 7}}
		if i == 2 {
			v.Marker = link.Marker{Alias: "someone-else", Group: 8}
		}
		if err := v.Create(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	n, err := link.RemoveOwned(nil, a, 7, "ratchet-test:own:")
	if err != nil || n != 2 {
		t.Fatalf("RemoveOwned = %d, %v; want 2", n, err)
	}
	if got := testutil.Links(t, a); !slices.Equal(got, []string{"e3"}) {
		t.Fatalf("left: %v, want only the foreign e3", got)
	}
	if n, err := link.RemoveOwned(nil, a, 7, "ratchet-test:own:"); err != nil || n != 0 {
		t.Fatalf("second RemoveOwned = %d, %v", n, err)
	}
}

func TestNetemImpairsTraffic(t *testing.T) {
	a, b := testutil.NewNS(t), testutil.NewNS(t)
	v := vethPair(a, b)
	var err error
	if v.A.Netem, err = link.ParseNetem("30ms", "1ms", "0%", "100mbit"); err != nil {
		t.Fatal(err)
	}
	err = v.Create(ctx, nil)
	if errors.Is(err, link.ErrNoNetem) {
		if left := append(testutil.Links(t, a), testutil.Links(t, b)...); len(left) != 0 {
			t.Fatalf("failed create left %v", left)
		}
		t.Skipf("kernel without netem: create failed cleanly with %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(ctx, nil); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	testutil.MustPing(t, a, "192.0.2.2")
	// two echo requests 200 ms apart, each delayed 30 ms
	if rtt := time.Since(start); rtt < 230*time.Millisecond {
		t.Fatalf("two pings took %v; with 30 ms netem delay they take at least 230 ms", rtt)
	}
	other := *v
	other.A.Netem = &link.Netem{Delay: 5 * time.Millisecond}
	if err := other.Verify(ctx, nil); err == nil || !strings.Contains(err.Error(), "netem") {
		t.Fatalf("verify with another delay: %v", err)
	}
}

// TestIPv6EnabledWhereDisabled creates an IPv6 end in a namespace whose
// default disables IPv6, as some runtimes set up containers.
func TestIPv6EnabledWhereDisabled(t *testing.T) {
	a, b := testutil.NewNS(t), testutil.NewNS(t)
	for _, n := range []ns.NetNS{a, b} {
		if out, err := exec.Command("nsenter", "--net="+n.Path(), "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1").CombinedOutput(); err != nil {
			t.Fatalf("%v %s", err, out)
		}
	}
	v := &link.Veth{
		A:      link.Endpoint{NS: a, Name: "in1", Addrs: []*net.IPNet{testutil.MustCIDR("2001:db8:9::1/64")}},
		B:      link.Endpoint{NS: b, Name: "in2", Addrs: []*net.IPNet{testutil.MustCIDR("2001:db8:9::2/64")}},
		Marker: marker("v6"),
	}
	if err := v.Create(ctx, nil); err != nil {
		t.Fatal(err)
	}
	testutil.MustPing(t, a, "2001:db8:9::2")
}

func TestOpenNetnsBy(t *testing.T) {
	n := testutil.NewNS(t)
	name := n.Path()[strings.LastIndex(n.Path(), "/")+1:]
	for _, c := range [][2]string{{"name", name}, {"path", n.Path()}, {"pid", fmt.Sprint(os.Getpid())}, {"current", ""}} {
		opened, err := link.OpenNetnsBy(c[0], c[1])
		if err != nil {
			t.Fatalf("OpenNetnsBy(%s, %s): %v", c[0], c[1], err)
		}
		opened.Close()
	}
	if _, err := link.OpenNetnsBy("name", "ratchet-test-absent"); err == nil {
		t.Fatal("opened a namespace that does not exist")
	}
}
