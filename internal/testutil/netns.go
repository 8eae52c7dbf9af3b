// Package testutil holds helpers for tests that run as root in throwaway
// network namespaces. Nothing here touches the host's own interfaces.
package testutil

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// RequireRoot fails the test at once when not run as root: every test of
// this kind needs to create namespaces and netdevs.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test creates network namespaces and must run as root")
	}
}

// NewNS creates a named network namespace (under /var/run/netns) that is
// removed when the test ends, whether it passes or fails.
func NewNS(t testing.TB) ns.NetNS {
	t.Helper()
	RequireRoot(t)
	n, err := testutils.NewNS()
	if err != nil {
		t.Fatalf("create netns: %v", err)
	}
	t.Cleanup(func() {
		n.Close()
		_ = testutils.UnmountNS(n)
	})
	return n
}

// Handle returns a netlink handle bound to n, closed when the test ends.
func Handle(t testing.TB, n ns.NetNS) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandleAt(netns.NsHandle(n.Fd()), unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", n.Path(), err)
	}
	t.Cleanup(h.Close)
	return h
}

// Links returns the names of the interfaces in n other than lo.
func Links(t testing.TB, n ns.NetNS) []string {
	t.Helper()
	all, err := Handle(t, n).LinkList()
	if err != nil {
		t.Fatalf("list links in %s: %v", n.Path(), err)
	}
	var names []string
	for _, l := range all {
		if l.Attrs().Name != "lo" {
			names = append(names, l.Attrs().Name)
		}
	}
	return names
}

// MustCIDR parses s as an address with its prefix, keeping the host part.
func MustCIDR(s string) *net.IPNet {
	ip, ipn, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	ipn.IP = ip
	return ipn
}

// Underlay joins two namespaces with a veth pair named ifname on both
// sides, addressed 192.0.2.1/24 + 2001:db8:ffff::1/64 in a and .2 / ::2 in
// b: two simulated nodes.
func Underlay(t testing.TB, a, b ns.NetNS, ifname string) {
	t.Helper()
	ha, hb := Handle(t, a), Handle(t, b)
	attrs := netlink.NewLinkAttrs()
	attrs.Name = ifname
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: ifname, PeerNamespace: netlink.NsFd(b.Fd())}
	if err := ha.LinkAdd(veth); err != nil {
		t.Fatalf("underlay veth: %v", err)
	}
	for i, h := range []*netlink.Handle{ha, hb} {
		l, err := h.LinkByName(ifname)
		if err != nil {
			t.Fatal(err)
		}
		for _, cidr := range []string{fmt.Sprintf("192.0.2.%d/24", i+1), fmt.Sprintf("2001:db8:ffff::%d/64", i+1)} {
			if err := h.AddrAdd(l, &netlink.Addr{IPNet: MustCIDR(cidr), Flags: unix.IFA_F_NODAD}); err != nil {
				t.Fatal(err)
			}
		}
		if err := h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
}

// Ping sends ICMP echo requests from inside n to addr and returns an error
// when none is answered. It needs the ping command (iputils-ping).
func Ping(n ns.NetNS, addr string) error {
	out, err := exec.Command("nsenter", "--net="+n.Path(), "ping", "-c", "2", "-i", "0.2", "-W", "2", addr).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ping %s from %s: %v\n%s", addr, n.Path(), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// MustPing fails the test unless addr answers pings from n.
func MustPing(t testing.TB, n ns.NetNS, addr string) {
	t.Helper()
	if err := Ping(n, addr); err != nil {
		t.Fatal(err)
	}
}

// WaitInNS waits until process pid has joined n. A process started as
// `nsenter --net=N cmd` runs in the caller's namespace, the host's, until
// nsenter has joined N: a test that hands its /proc/PID/ns/net to the code
// under test must wait, or that code would change the host.
func WaitInNS(t testing.TB, pid int, n ns.NetNS) {
	t.Helper()
	var want unix.Stat_t
	if err := unix.Stat(n.Path(), &want); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		var got unix.Stat_t
		err := unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &got)
		if err == nil && got.Dev == want.Dev && got.Ino == want.Ino {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d did not join %s within 5 s (last error: %v)", pid, n.Path(), err)
		}
	}
}
