package ctl_test

import (
	"errors"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/ratchet-cni/ratchet/internal/testutil"
)

// addArgs adds r1:e2 -- r2:w2 to the lab, 198.51.100.1 and 2001:db8::1 in
// r1, .2 and ::2 in r2.
func addArgs(dir string) []string {
	return []string{"link", "add", "--store", dir, "--ips", "198.51.100.1/30,198.51.100.2/30", "--ips", "2001:db8::1/64,2001:db8::2/64", "lab/r1:e2", "lab/r2:w2"}
}

// parkedEnds lists the veths in the lab's parking namespace.
func parkedEnds(t *testing.T, dir string) []string {
	t.Helper()
	out, err := exec.Command("ip", "-n", filepath.Base(testutil.ParkingPath(dir)), "-o", "link", "show", "type", "veth").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link show: %v: %s", err, out)
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			names = append(names, strings.Split(strings.TrimSuffix(f[1], ":"), "@")[0])
		}
	}
	slices.Sort(names)
	return names
}

// gone fails unless n has no interface name.
func gone(t *testing.T, n ns.NetNS, name string) {
	t.Helper()
	_, err := testutil.Handle(t, n).LinkByName(name)
	var notFound netlink.LinkNotFoundError
	if !errors.As(err, &notFound) {
		t.Errorf("%s in %s: %v, want not found", name, n.Path(), err)
	}
}

// addedUp checks that r1:e2 and r2:w2 carry their addresses and carrier,
// and that traffic passes.
func addedUp(t *testing.T, r1, r2 ns.NetNS) {
	t.Helper()
	for _, p := range []struct {
		n          ns.NetNS
		name, addr string
	}{{r1, "e2", "198.51.100.1/30"}, {r2, "w2", "198.51.100.2/30"}} {
		s, _ := inspect(t, p.n, p.name)
		if !slices.Contains(s.Addrs, p.addr) {
			t.Errorf("%s: addresses %v, want %s", p.name, s.Addrs, p.addr)
		}
		waitCarrier(t, p.n, p.name, true)
		l, _ := testutil.Handle(t, p.n).LinkByName(p.name)
		v6, _ := testutil.Handle(t, p.n).AddrList(l, netlink.FAMILY_V6)
		found := false
		for _, a := range v6 {
			found = found || strings.HasPrefix(a.IPNet.String(), "2001:db8::")
		}
		if !found {
			t.Errorf("%s: no 2001:db8:: address in %v", p.name, v6)
		}
	}
	waitPing(t, r1, "198.51.100.2")
}

// TestLinkAddAndDel: link add makes both ends at once in the running pods,
// addressed and with carrier, shown as added; link del (by either end)
// takes both away and leaves the pods' other link alone.
func TestLinkAddAndDel(t *testing.T) {
	dir, r1, r2 := lab(t)
	parked := parkedEnds(t, dir)
	mustCtl(t, nil, addArgs(dir)...)
	addedUp(t, r1, r2)
	if out := mustCtl(t, nil, "links", "--store", dir); !hasRow(out, "up lab/r1:e2 lab/r2:w2 added") {
		t.Errorf("links after link add:\n%s", out)
	}
	if out := mustCtl(t, nil, "link", "show", "--store", dir, "lab/r2:w2"); !strings.Contains(out, "added") {
		t.Errorf("link show:\n%s", out)
	}
	mustCtl(t, nil, "link", "del", "--store", dir, "lab/r2:w2")
	gone(t, r1, "e2")
	gone(t, r2, "w2")
	if after := parkedEnds(t, dir); !slices.Equal(after, parked) {
		t.Errorf("parked ends after link del: %v, want %v", after, parked)
	}
	if out := mustCtl(t, nil, "links", "--store", dir); strings.Contains(out, "lab/r1:e2") {
		t.Errorf("links after link del:\n%s", out)
	}
	testutil.MustPing(t, r1, "192.0.2.2")
	// A declared link is not link del's.
	if _, stderr, code := ctl(t, nil, "link", "del", "--store", dir, "lab/r1:e1"); code == 0 || !strings.Contains(stderr, "annotation") {
		t.Errorf("link del of a declared link: exit %d, %s", code, stderr)
	}
}

// TestAddedLinkSurvivesRestarts: an added link's end is re-made by its
// pod's ADD although no annotation declares it, whichever pod restarts,
// and the pods' DELs leave nothing of it.
func TestAddedLinkSurvivesRestarts(t *testing.T) {
	dir, r1, r2 := lab(t)
	mustCtl(t, nil, addArgs(dir)...)
	addedUp(t, r1, r2)
	for _, p := range []struct {
		pod   string
		n     ns.NetNS
		links string
	}{{"r2", r2, r2Links}, {"r1", r1, r1Links}} {
		mustCNI(t, "DEL", dir, p.pod, p.n, "")
		mustCNI(t, "ADD", dir, p.pod, p.n, p.links)
		addedUp(t, r1, r2)
		mustCNI(t, "CHECK", dir, "r1", r1, r1Links)
		mustCNI(t, "CHECK", dir, "r2", r2, r2Links)
		if out := mustCtl(t, nil, "links", "--store", dir); !hasRow(out, "up lab/r1:e2 lab/r2:w2 added") {
			t.Errorf("links after %s's restart:\n%s", p.pod, out)
		}
	}
	mustCNI(t, "DEL", dir, "r1", r1, "")
	mustCNI(t, "DEL", dir, "r2", r2, "")
	gone(t, r1, "e2")
	gone(t, r2, "w2")
	if left := parkedEnds(t, dir); len(left) != 0 {
		t.Errorf("parked ends after both DELs: %v", left)
	}
	if out := mustCtl(t, nil, "links", "--store", dir); strings.Contains(out, "lab/") {
		t.Errorf("links after both DELs:\n%s", out)
	}
}

// TestLinkAddBadInput: each bad argument is one line naming it, and
// changes nothing.
func TestLinkAddBadInput(t *testing.T) {
	dir, r1, r2 := lab(t)
	before := mustCtl(t, nil, "links", "--store", dir)
	links1, links2, parked := testutil.Links(t, r1), testutil.Links(t, r2), parkedEnds(t, dir)
	for _, c := range []struct {
		args []string
		name string
	}{
		{[]string{"--ips", "198.51.100.1/30", "lab/r1:e2", "lab/r2:w2"}, "--ips"},
		{[]string{"--ips", "198.51.100.1/30,nonsense", "lab/r1:e2", "lab/r2:w2"}, "nonsense"},
		{[]string{"--netem", "speed=1", "lab/r1:e2", "lab/r2:w2"}, "--netem"},
		{[]string{"--mtu", "10", "lab/r1:e2", "lab/r2:w2"}, "mtu"},
		{[]string{"lab/r1", "lab/r2:w2"}, "lab/r1"},
		{[]string{"lab/r1:e2"}, "two link ends"},
		{[]string{"lab/r1:bad/name", "lab/r2:w2"}, "bad/name"},
		{[]string{"lab/r1:e2", "lab/r1:e3"}, "one pod"},
		{[]string{"lab/r1:e2", "lab/r9:w2"}, "lab/r9"},
		{[]string{"lab/r1:e1", "lab/r2:w2"}, "lab/r1:e1"},
		{[]string{"lab/r1:eth0", "lab/r2:w2"}, "eth0"},
	} {
		_, stderr, code := ctl(t, nil, append([]string{"link", "add", "--store", dir}, c.args...)...)
		// A usage error has a second line: the pointer to --help.
		first, rest, _ := strings.Cut(strings.TrimSpace(stderr), "\n")
		if code == 0 || !strings.Contains(first, c.name) || rest != "" && !strings.Contains(rest, "--help") {
			t.Errorf("%v: exit %d, stderr %q; want one line naming %s", c.args, code, stderr, c.name)
		}
	}
	if after := mustCtl(t, nil, "links", "--store", dir); after != before {
		t.Errorf("links changed:\n%s\n->\n%s", before, after)
	}
	if !slices.Equal(testutil.Links(t, r1), links1) || !slices.Equal(testutil.Links(t, r2), links2) || !slices.Equal(parkedEnds(t, dir), parked) {
		t.Error("interfaces changed")
	}
}

// TestLinkAddFailingMidwayLeavesNothing: when the second pod already has
// an interface of the name, the first end, made already, goes again.
func TestLinkAddFailingMidwayLeavesNothing(t *testing.T) {
	dir, r1, r2 := lab(t)
	if err := testutil.Handle(t, r2).LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "w2"}, PeerName: "w2peer"}); err != nil {
		t.Fatal(err)
	}
	before, parked := mustCtl(t, nil, "links", "--store", dir), parkedEnds(t, dir)
	_, stderr, code := ctl(t, nil, addArgs(dir)...)
	if code == 0 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, "lab/r2:w2") {
		t.Errorf("link add onto a taken name: exit %d, stderr %q", code, stderr)
	}
	gone(t, r1, "e2")
	if _, err := testutil.Handle(t, r2).LinkByName("w2"); err != nil {
		t.Errorf("the pod's own w2: %v", err)
	}
	if after := parkedEnds(t, dir); !slices.Equal(after, parked) {
		t.Errorf("parked ends: %v, want %v", after, parked)
	}
	if after := mustCtl(t, nil, "links", "--store", dir); after != before {
		t.Errorf("links changed:\n%s\n->\n%s", before, after)
	}
}
