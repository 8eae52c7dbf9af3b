package ctl_test

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/ratchet-cni/ratchet/internal/testutil"
)

// cni runs the ratchet binary for pod and returns its stdout and whether
// it succeeded (CHECK's failures are answers too).
func cni(t *testing.T, cmd, dir, pod string, n ns.NetNS, annotation string) (string, bool) {
	t.Helper()
	out, err := testutil.PodCNI(binDir, cmd, dir, pod, n.Path(), annotation)
	return out, err == nil
}

func mustCNI(t *testing.T, cmd, dir, pod string, n ns.NetNS, annotation string) {
	t.Helper()
	if out, ok := cni(t, cmd, dir, pod, n, annotation); !ok {
		t.Fatalf("%s %s: %s", cmd, pod, out)
	}
}

const (
	r1Links = `[{"name":"e1","ips":["192.0.2.1/24"],"peer":{"pod":"r2","name":"w1"}}]`
	r2Links = `[{"name":"w1","ips":["192.0.2.2/24"],"peer":{"pod":"r1","name":"e1"}}]`
)

// lab makes two pods r1 and r2 joined by r1:e1 -- r2:w1.
func lab(t *testing.T) (dir string, r1, r2 ns.NetNS) {
	dir = t.TempDir()
	t.Cleanup(func() { testutil.RemoveParking(dir) })
	r1, r2 = testutil.NewNS(t), testutil.NewNS(t)
	mustCNI(t, "ADD", dir, "r1", r1, r1Links)
	mustCNI(t, "ADD", dir, "r2", r2, r2Links)
	testutil.MustPing(t, r1, "192.0.2.2")
	return dir, r1, r2
}

// ifState is what a pod sees of its interface, but its carrier.
type ifState struct {
	Index  int
	MAC    string
	Addrs  []string
	Routes []string
}

func inspect(t *testing.T, n ns.NetNS, name string) (ifState, netlink.Link) {
	t.Helper()
	h := testutil.Handle(t, n)
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatalf("%s in %s: %v", name, n.Path(), err)
	}
	s := ifState{Index: l.Attrs().Index, MAC: l.Attrs().HardwareAddr.String()}
	addrs, _ := h.AddrList(l, netlink.FAMILY_V4)
	for _, a := range addrs {
		s.Addrs = append(s.Addrs, a.IPNet.String())
	}
	routes, _ := h.RouteList(l, netlink.FAMILY_ALL)
	for _, r := range routes {
		s.Routes = append(s.Routes, r.String())
	}
	slices.Sort(s.Routes)
	return s, l
}

// carrier reports whether the pod's interface has carrier: LOWER_UP and an
// operstate that is not down.
func carrier(t *testing.T, n ns.NetNS, name string) bool {
	_, l := inspect(t, n, name)
	return l.Attrs().RawFlags&0x10000 != 0 && l.Attrs().OperState == netlink.OperUp // IFF_LOWER_UP
}

// waitCarrier waits up to 2 s for the interface's carrier to be want.
func waitCarrier(t *testing.T, n ns.NetNS, name string, want bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); carrier(t, n, name) != want; {
		if time.Now().After(deadline) {
			_, l := inspect(t, n, name)
			t.Fatalf("%s: carrier %v, want %v (flags %#x, operstate %s)", name, !want, want, l.Attrs().RawFlags, l.Attrs().OperState)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitPing waits up to 5 s for addr to answer pings from n: after a cable
// is plugged back, the pod's neighbour entry for its peer, failed while
// the cable was out, is resolved again on the kernel's own schedule, as
// after a real cable is plugged back.
func waitPing(t *testing.T, n ns.NetNS, addr string) {
	t.Helper()
	start := time.Now()
	for {
		err := testutil.Ping(n, addr)
		if err == nil {
			t.Logf("traffic resumed after %v", time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal(err)
		}
	}
}

// TestLinkDownPullsTheCable: `link down` takes both pods' carrier and the
// traffic, and nothing else in the pods; `link up` (named by the other
// end) gives them back.
func TestLinkDownPullsTheCable(t *testing.T) {
	dir, r1, r2 := lab(t)
	before1, _ := inspect(t, r1, "e1")
	before2, _ := inspect(t, r2, "w1")
	mustCtl(t, nil, "link", "down", "--store", dir, "lab/r1:e1")
	for _, p := range []struct {
		n    ns.NetNS
		name string
	}{{r1, "e1"}, {r2, "w1"}} {
		if _, l := inspect(t, p.n, p.name); l.Attrs().RawFlags&0x10000 != 0 || l.Attrs().OperState == netlink.OperUp {
			t.Errorf("%s after link down: flags %#x operstate %s, want NO-CARRIER and not up", p.name, l.Attrs().RawFlags, l.Attrs().OperState)
		}
	}
	if err := testutil.Ping(r1, "192.0.2.2"); err == nil {
		t.Error("ping passes through a pulled cable")
	}
	if out := mustCtl(t, nil, "links", "--store", dir); !hasRow(out, "pulled lab/r1:e1 lab/r2:w1 pulled") {
		t.Errorf("links after link down:\n%s", out)
	}
	// Pulling again is harmless.
	mustCtl(t, nil, "link", "down", "--store", dir, "lab/r2:w1")
	mustCtl(t, nil, "link", "up", "lab/r2:w1", "--store", dir)
	waitCarrier(t, r1, "e1", true)
	waitCarrier(t, r2, "w1", true)
	waitPing(t, r1, "192.0.2.2")
	if out := mustCtl(t, nil, "links", "--store", dir); !hasExactRow(out, "up lab/r1:e1 lab/r2:w1") {
		t.Errorf("links after link up:\n%s", out)
	}
	after1, _ := inspect(t, r1, "e1")
	after2, _ := inspect(t, r2, "w1")
	if fmt.Sprint(before1) != fmt.Sprint(after1) || fmt.Sprint(before2) != fmt.Sprint(after2) {
		t.Errorf("the pods' interfaces changed:\nr1 %+v\n-> %+v\nr2 %+v\n-> %+v", before1, after1, before2, after2)
	}
}

// shaped reports whether 40 large requests from r1 to r2 take over a
// second: a 200 kbit/s bucket toward r2 carries them in 1.6 s, an
// unshaped link in 0.2 s.
func shaped(t *testing.T, r1 ns.NetNS) bool {
	t.Helper()
	got, took, err := testutil.Burst(r1, "192.0.2.2", 40, 1400)
	if err != nil || got == 0 {
		t.Fatalf("burst: %d answered in %v, %v", got, took, err)
	}
	return took > time.Second
}

// TestLinkSettingsSurviveRestarts: a rate toward r2 shapes the traffic
// toward r2, keeps doing so after either pod's DEL and ADD, and is what
// CHECK expects (103 once someone removes it); a pulled cable stays
// pulled across the peer's restart, the new interface without carrier.
func TestLinkSettingsSurviveRestarts(t *testing.T) {
	dir, r1, r2 := lab(t)
	mustCtl(t, nil, "link", "set", "--store", dir, "--rate", "200kbit", "--direction", "from", "lab/r1:e1")
	if !shaped(t, r1) {
		t.Fatal("the rate toward r2 does not shape")
	}
	out := mustCtl(t, nil, "links", "--store", dir)
	if !hasRow(out, "impaired lab/r1:e1 lab/r2:w1 rate 200kbit→lab/r2:w1") {
		t.Errorf("links:\n%s", out)
	}
	var show struct {
		State string
		Ends  [2]struct {
			Pod    string
			Toward string
		}
	}
	if err := json.Unmarshal([]byte(mustCtl(t, nil, "link", "show", "--store", dir, "-o", "json", "lab/r2:w1")), &show); err != nil {
		t.Fatal(err)
	}
	if show.State != "impaired" || show.Ends[0].Toward != "" || show.Ends[1].Pod != "lab/r2" || show.Ends[1].Toward != "rate 200kbit" {
		t.Errorf("show: %+v", show)
	}
	for _, p := range []struct {
		pod   string
		n     ns.NetNS
		links string
	}{{"r2", r2, r2Links}, {"r1", r1, r1Links}} {
		mustCNI(t, "DEL", dir, p.pod, p.n, "")
		mustCNI(t, "ADD", dir, p.pod, p.n, p.links)
		if !shaped(t, r1) {
			t.Fatalf("after %s's DEL and ADD the rate is gone", p.pod)
		}
		mustCNI(t, "CHECK", dir, "r1", r1, r1Links)
		mustCNI(t, "CHECK", dir, "r2", r2, r2Links)
	}
	// Someone removes the qdisc by hand: r2's CHECK sees the drift.
	park := filepath.Base(testutil.ParkingPath(dir))
	if out, err := exec.Command("ip", "-n", park, "-o", "link", "show", "type", "veth").CombinedOutput(); err == nil {
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			f := strings.Fields(line)
			exec.Command("tc", "-n", park, "qdisc", "del", "dev", strings.Split(strings.TrimSuffix(f[1], ":"), "@")[0], "root").Run()
		}
	}
	if out, ok := cni(t, "CHECK", dir, "r2", r2, r2Links); ok || !strings.Contains(out, `"code": 103`) && !strings.Contains(out, `"code":103`) {
		t.Errorf("CHECK after the qdisc went: ok=%v %s", ok, out)
	}
	if _, ok := cni(t, "CHECK", dir, "r1", r1, r1Links); !ok {
		t.Error("r1's CHECK fails: no impairment leaves toward r1")
	}
	mustCtl(t, nil, "link", "reset", "--store", dir, "lab/r1:e1")
	mustCNI(t, "CHECK", dir, "r2", r2, r2Links)

	// A pulled cable stays pulled across the restart of either pod.
	mustCtl(t, nil, "link", "down", "--store", dir, "lab/r1:e1")
	for _, p := range []struct {
		pod   string
		n     ns.NetNS
		links string
	}{{"r2", r2, r2Links}, {"r1", r1, r1Links}} {
		mustCNI(t, "DEL", dir, p.pod, p.n, "")
		mustCNI(t, "ADD", dir, p.pod, p.n, p.links)
		if carrier(t, r1, "e1") || carrier(t, r2, "w1") {
			t.Errorf("a pulled link came back with carrier after %s's restart", p.pod)
		}
		if err := testutil.Ping(r1, "192.0.2.2"); err == nil {
			t.Errorf("ping passes through a pulled cable after %s's restart", p.pod)
		}
		mustCNI(t, "CHECK", dir, "r1", r1, r1Links)
		mustCNI(t, "CHECK", dir, "r2", r2, r2Links)
	}
	if out := mustCtl(t, nil, "links", "--store", dir); !hasRow(out, "pulled lab/r1:e1 lab/r2:w1 pulled") {
		t.Errorf("links after both restarts:\n%s", out)
	}
	mustCtl(t, nil, "link", "up", "--store", dir, "lab/r1:e1")
	waitCarrier(t, r2, "w1", true)
	waitPing(t, r1, "192.0.2.2")
}

// TestLinkBadValuesChangeNothing: each bad value is one line naming its
// flag, and leaves the record and the parking namespace as they were.
func TestLinkBadValuesChangeNothing(t *testing.T) {
	dir, r1, _ := lab(t)
	park := filepath.Base(testutil.ParkingPath(dir))
	qdiscs := func() string {
		out, _ := exec.Command("tc", "-n", park, "qdisc", "show").CombinedOutput()
		return string(out)
	}
	before, show := qdiscs(), mustCtl(t, nil, "link", "show", "--store", dir, "lab/r1:e1")
	for _, c := range []struct {
		args []string
		flag string
	}{
		{[]string{"--loss", "200%"}, "--loss"},
		{[]string{"--corrupt", "x"}, "--corrupt"},
		{[]string{"--duplicate", "-1%"}, "--duplicate"},
		{[]string{"--reorder", "25%"}, "--reorder"},
		{[]string{"--rate", "fast"}, "--rate"},
		{[]string{"--rate", "1mbit", "--jitter", "1ms"}, "--jitter"},
		{[]string{"--delay", "1h"}, "--delay"},
		{[]string{"--rate", "1mbit", "--direction", "sideways"}, "--direction"},
	} {
		_, stderr, code := ctl(t, nil, append(append([]string{"link", "set", "--store", dir}, c.args...), "lab/r1:e1")...)
		if code == 0 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, c.flag) {
			t.Errorf("%v: exit %d, stderr %q; want one line naming %s", c.args, code, stderr, c.flag)
		}
	}
	for _, args := range [][]string{{"link", "set", "--store", dir, "--rate", "1mbit", "lab/r1"}, {"link", "set", "--store", dir, "lab/r1:e1"},
		{"link", "down", "--store", dir, "lab/r9:e1"}, {"link", "down", "--store", dir, "--all-of", "lab/r1", "lab/r1:e1"}} {
		if _, _, code := ctl(t, nil, args...); code == 0 {
			t.Errorf("%v succeeded", args)
		}
	}
	// A netem flag where the kernel has no netem names the module.
	_, stderr, code := ctl(t, nil, "link", "set", "--store", dir, "--delay", "10ms", "lab/r1:e1")
	if code != 0 && !strings.Contains(stderr, "sch_netem") {
		t.Errorf("delay failed without naming sch_netem: %s", stderr)
	}
	if code == 0 {
		mustCtl(t, nil, "link", "reset", "--store", dir, "lab/r1:e1")
	}
	if after := qdiscs(); after != before {
		t.Errorf("qdiscs changed:\n%s\n->\n%s", before, after)
	}
	if after := mustCtl(t, nil, "link", "show", "--store", dir, "lab/r1:e1"); after != show {
		t.Errorf("link changed:\n%s\n->\n%s", show, after)
	}
	testutil.MustPing(t, r1, "192.0.2.2")
}

// TestLinkAllOf: `link down --all-of` pulls every link of a pod in one
// command, and `link up --all-of` restores them.
func TestLinkAllOf(t *testing.T) {
	const n = 40
	dir := t.TempDir()
	t.Cleanup(func() { testutil.RemoveParking(dir) })
	r1, r2 := testutil.NewNS(t), testutil.NewNS(t)
	var a, b []string
	for i := range n {
		a = append(a, fmt.Sprintf(`{"name":"e%d","peer":{"pod":"r2","name":"w%d"}}`, i, i))
		b = append(b, fmt.Sprintf(`{"name":"w%d","peer":{"pod":"r1","name":"e%d"}}`, i, i))
	}
	mustCNI(t, "ADD", dir, "r1", r1, "["+strings.Join(a, ",")+"]")
	mustCNI(t, "ADD", dir, "r2", r2, "["+strings.Join(b, ",")+"]")
	for i := range n {
		waitCarrier(t, r2, fmt.Sprintf("w%d", i), true)
	}
	mustCtl(t, nil, "link", "down", "--store", dir, "--all-of", "lab/r1")
	for i := range n {
		if carrier(t, r2, fmt.Sprintf("w%d", i)) || carrier(t, r1, fmt.Sprintf("e%d", i)) {
			t.Fatalf("link %d has carrier after down --all-of", i)
		}
	}
	if out := mustCtl(t, nil, "links", "--store", dir); strings.Count(out, "pulled") != 2*n {
		t.Errorf("links after down --all-of:\n%s", out)
	}
	mustCtl(t, nil, "link", "up", "--store", dir, "--all-of", "lab/r2")
	for i := range n {
		waitCarrier(t, r1, fmt.Sprintf("e%d", i), true)
	}
	if out := mustCtl(t, nil, "links", "--store", dir); strings.Contains(out, "pulled") {
		t.Errorf("links after up --all-of:\n%s", out)
	}
}
