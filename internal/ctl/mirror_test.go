package ctl_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/ratchet-cni/ratchet/internal/podlink"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testutil"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

const (
	cLinks    = `[{"name":"m1","ips":["198.51.100.1/24"],"peer":{"pod":"sink","name":"s1"}}]`
	sinkLinks = `[{"name":"s1","ips":["198.51.100.2/24"],"peer":{"pod":"c","name":"m1"}}]`
	quiet     = 300 * time.Millisecond
)

var (
	request = "request 192.0.2.1>192.0.2.2"
	reply   = "reply 192.0.2.2>192.0.2.1"
)

// echoes checks the ICMP echoes s saw against want (by their String).
func echoes(t *testing.T, where string, s *testutil.Sniffer, want map[string]int) {
	t.Helper()
	es, err := s.Echoes(quiet)
	if err != nil {
		t.Fatal(err)
	}
	got := testutil.CountEchoes(es)
	ok := len(got) == len(want)
	for k, n := range want {
		ok = ok && got[k] == n
	}
	if !ok {
		t.Fatalf("%s saw %v, want %v", where, got, want)
	}
}

// TestLinkMirror: `link mirror` gives a collector pod a copy of both
// directions of a link, and the link's traffic is the same; the mirror
// survives a restart of a mirrored pod and of the collector (whose going
// leaves the link working), CHECK verifies it, and unmirror and reset
// stop the copies.
func TestLinkMirror(t *testing.T) {
	dir, r1, r2 := lab(t)
	c, sink := testutil.NewNS(t), testutil.NewNS(t)
	mustCNI(t, "ADD", dir, "c", c, cLinks)
	mustCNI(t, "ADD", dir, "sink", sink, sinkLinks)
	testutil.MustPing(t, c, "198.51.100.2")

	mustCtl(t, nil, "link", "mirror", "--store", dir, "lab/r1:e1", "--to", "lab/c:m1")
	if out := mustCtl(t, nil, "link", "show", "--store", dir, "lab/r2:w1"); !strings.Contains(out, "mirror   to lab/c:m1 (both directions)\n") {
		t.Fatalf("link show:\n%s", out)
	}
	if out := mustCtl(t, nil, "links", "--store", dir); !strings.Contains(out, "mirror→lab/c:m1") {
		t.Fatalf("links:\n%s", out)
	}
	both := map[string]int{request: 3, reply: 3}
	check := func(when string, collector ns.NetNS, ifName string, want map[string]int) {
		t.Helper()
		sc, s2 := testutil.Sniff(t, collector, ifName), testutil.Sniff(t, r2, "w1")
		testutil.PingExactly(t, r1, "192.0.2.2", 3)
		echoes(t, "the collector "+when, sc, want)
		echoes(t, "r2 "+when, s2, map[string]int{request: 3})
	}
	check("mirrored", c, "m1", both)
	mustCNI(t, "CHECK", dir, "r1", r1, r1Links)
	mustCNI(t, "CHECK", dir, "r2", r2, r2Links)

	// Someone removes the mirrors by hand: CHECK sees the drift, and
	// mirroring again puts them back.
	park := filepath.Base(testutil.ParkingPath(dir))
	out, err := exec.Command("ip", "-n", park, "-o", "link", "show", "type", "veth").CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		dev := strings.Split(strings.TrimSuffix(strings.Fields(line)[1], ":"), "@")[0]
		exec.Command("tc", "-n", park, "filter", "del", "dev", dev, "parent", "ffff:", "protocol", "all", "prio", "1", "handle", "800::7ff", "u32").Run()
	}
	for _, p := range []struct {
		pod   string
		n     ns.NetNS
		links string
	}{{"r1", r1, r1Links}, {"r2", r2, r2Links}} {
		if out, ok := cni(t, "CHECK", dir, p.pod, p.n, p.links); ok || !strings.Contains(out, `"code": 103`) && !strings.Contains(out, `"code":103`) {
			t.Errorf("%s's CHECK after the mirror went: ok=%v %s", p.pod, ok, out)
		}
	}
	check("with the mirrors removed by hand", c, "m1", map[string]int{})
	mustCtl(t, nil, "link", "mirror", "--store", dir, "lab/r2:w1", "--to", "lab/c:m1")
	mustCNI(t, "CHECK", dir, "r1", r1, r1Links)
	check("mirrored again", c, "m1", both)

	// r2 restarts: its new end is mirrored before it is plugged in.
	mustCNI(t, "DEL", dir, "r2", r2, r2Links)
	mustCNI(t, "ADD", dir, "r2", r2, r2Links)
	waitPing(t, r1, "192.0.2.2")
	check("after r2's restart", c, "m1", both)
	mustCNI(t, "CHECK", dir, "r2", r2, r2Links)

	// The collector goes: the link works on, unchanged, and the mirror
	// waits; it comes back, and the mirror copies to its new interface.
	mustCNI(t, "DEL", dir, "c", c, cLinks)
	s1, s2 := testutil.Sniff(t, r1, "e1"), testutil.Sniff(t, r2, "w1")
	testutil.PingExactly(t, r1, "192.0.2.2", 3)
	echoes(t, "r1 with the collector gone", s1, map[string]int{reply: 3})
	echoes(t, "r2 with the collector gone", s2, map[string]int{request: 3})
	mustCNI(t, "CHECK", dir, "r1", r1, r1Links)
	if out := mustCtl(t, nil, "link", "show", "--store", dir, "lab/r1:e1"); !strings.Contains(out, "not here now") {
		t.Fatalf("link show with the collector gone:\n%s", out)
	}
	mustCNI(t, "ADD", dir, "c", c, cLinks)
	waitPing(t, c, "198.51.100.2")
	check("after the collector's restart", c, "m1", both)
	mustCNI(t, "CHECK", dir, "r1", r1, r1Links)

	// unmirror names the wrong collector: refused; right: no more copies.
	if _, errOut, code := ctl(t, nil, "link", "unmirror", "--store", dir, "lab/r1:e1", "--to", "lab/sink:s1"); code == 0 || !strings.Contains(errOut, "--to lab/sink:s1") {
		t.Fatalf("unmirror --to another collector: exit %d, %s", code, errOut)
	}
	mustCtl(t, nil, "link", "unmirror", "--store", dir, "lab/r2:w1")
	mustCtl(t, nil, "link", "unmirror", "--store", dir, "lab/r2:w1") // again: nothing to do
	check("after unmirror", c, "m1", map[string]int{})
	if out := mustCtl(t, nil, "link", "show", "--store", dir, "lab/r1:e1"); !strings.Contains(out, "mirror   none\n") {
		t.Fatalf("link show after unmirror:\n%s", out)
	}

	// reset stops a mirror with the impairments.
	mustCtl(t, nil, "link", "mirror", "--store", dir, "lab/r2:w1", "--to", "lab/sink:s1")
	check("mirrored to the sink", sink, "s1", both)
	mustCtl(t, nil, "link", "reset", "--store", dir, "lab/r1:e1")
	check("after reset", sink, "s1", map[string]int{})
	if out := mustCtl(t, nil, "link", "show", "--store", dir, "lab/r1:e1"); !strings.Contains(out, "mirror   none\n") {
		t.Fatalf("link show after reset:\n%s", out)
	}
}

// TestLinkMirrorRefusals: bad input is refused in one line naming the
// flag, and changes nothing.
func TestLinkMirrorRefusals(t *testing.T) {
	dir, _, _ := lab(t)
	c, sink := testutil.NewNS(t), testutil.NewNS(t)
	mustCNI(t, "ADD", dir, "c", c, cLinks)
	mustCNI(t, "ADD", dir, "sink", sink, sinkLinks)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"lab/r1:e1"}, "--to"},
		{[]string{"lab/r1:e1", "--to", "nope"}, "--to"},
		{[]string{"lab/r1:e1", "--to", "lab/r2:w1"}, "--to lab/r2:w1: an end of the mirrored link"},
		{[]string{"lab/r1:e1", "--to", "lab/r1:e1"}, "--to lab/r1:e1: an end of the mirrored link"},
		{[]string{"lab/r1:e1", "--to", "lab/nobody:x"}, "--to lab/nobody:x: not a pod link end"},
		{[]string{"lab/nobody:x", "--to", "lab/c:m1"}, "lab/nobody:x"},
	} {
		args := append([]string{"link", "mirror", "--store", dir}, tc.args...)
		_, errOut, code := ctl(t, nil, args...)
		first, _, _ := strings.Cut(errOut, "\n")
		if code == 0 || !strings.Contains(first, tc.want) {
			t.Errorf("ratchetctl %v: exit %d, stderr %q; want a one-line error with %q", args, code, errOut, tc.want)
		}
	}
	if out := mustCtl(t, nil, "link", "show", "--store", dir, "lab/r1:e1"); !strings.Contains(out, "mirror   none\n") {
		t.Fatalf("link show after refusals:\n%s", out)
	}
}

// TestLinkMirrorRefusesCrossNode: a link whose end here is stitched to a
// tunnel (remote) is refused, in one line, and stays unmirrored.
func TestLinkMirrorRefusesCrossNode(t *testing.T) {
	dir := t.TempDir()
	t.Cleanup(func() { testutil.RemoveParking(dir) })
	r1, c, sink := testutil.NewNS(t), testutil.NewNS(t), testutil.NewNS(t)
	mustCNI(t, "ADD", dir, "r1", r1, `[{"name":"e9","peer":{"pod":"far","name":"w9"}}]`)
	mustCNI(t, "ADD", dir, "c", c, cLinks)
	mustCNI(t, "ADD", dir, "sink", sink, sinkLinks)
	park, err := ns.GetNS(testutil.ParkingPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer park.Close()
	// What the node agent does for a peer on another node: a VXLAN
	// tunnel in the parking namespace, stitched to the lone end.
	h := testutil.Handle(t, park)
	vx := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "rvx99"}, VxlanId: 99, Port: 4789}
	if err := h.LinkAdd(vx); err != nil {
		t.Fatal(err)
	}
	tunnel, err := h.LinkByName("rvx99")
	if err != nil {
		t.Fatal(err)
	}
	parked := -1
	all, _ := h.LinkList()
	for _, l := range all {
		if strings.HasSuffix(l.Attrs().Alias, ":e9") {
			parked = l.Attrs().Index
		}
	}
	if parked < 0 {
		t.Fatal("r1's parked end is not in the parking namespace")
	}
	if err := link.Stitch(nil, park, parked, tunnel.Attrs().Index); err != nil {
		t.Fatal(err)
	}
	if out := mustCtl(t, nil, "links", "--store", dir); !strings.Contains(out, "remote") {
		t.Fatalf("the link is not remote:\n%s", out)
	}
	_, errOut, code := ctl(t, nil, "link", "mirror", "--store", dir, "lab/r1:e9", "--to", "lab/c:m1")
	if first, _, _ := strings.Cut(errOut, "\n"); code == 0 || !strings.Contains(first, "is cross-node") {
		t.Fatalf("mirror a cross-node link: exit %d, %s", code, errOut)
	}
	if out := mustCtl(t, nil, "links", "--store", dir); strings.Contains(out, "mirror") {
		t.Fatalf("a refused mirror is recorded:\n%s", out)
	}
}

// mirrorState reads, from the store, the links listed as mirrored to
// lab/c:m1 and to lab/sink:s1, and the record of the link r1:e1 -- r2:w1.
func mirrorState(t *testing.T, dir string) (toC, toSink []string, rec *store.LinkRecord) {
	t.Helper()
	st, err := store.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if toC, err = podlink.MirroredTo(ctx, st, "lab/c", "m1"); err != nil {
		t.Fatal(err)
	}
	if toSink, err = podlink.MirroredTo(ctx, st, "lab/sink", "s1"); err != nil {
		t.Fatal(err)
	}
	if rec, err = st.LinkAt(ctx, "lab/r1", "e1"); err != nil {
		t.Fatal(err)
	}
	return toC, toSink, rec
}

// TestLinkMirrorFailedMoveKeepsList: moving a mirror to another collector
// fails in the kernel (r2's parked end's filter was rewritten by hand with
// another protocol, so the kernel refuses the mirror's node there) and
// changes nothing: the record, r1's parked end and the first collector's
// list still mirror the link to it (its restart repoints the mirror), and
// the second collector's list does not name it. Then both pods go: the
// link's record goes, and with it its entry in the collector's list.
func TestLinkMirrorFailedMoveKeepsList(t *testing.T) {
	dir, r1, r2 := lab(t)
	c, sink := testutil.NewNS(t), testutil.NewNS(t)
	mustCNI(t, "ADD", dir, "c", c, cLinks)
	mustCNI(t, "ADD", dir, "sink", sink, sinkLinks)
	mustCtl(t, nil, "link", "mirror", "--store", dir, "lab/r1:e1", "--to", "lab/c:m1")
	toC, toSink, rec := mirrorState(t, dir)
	if len(toC) != 1 || toC[0] != rec.ID || len(toSink) != 0 {
		t.Fatalf("mirrored to c: lists c %q, sink %q", toC, toSink)
	}
	e1, _, _ := rec.End("lab/r1", "e1")
	w1, _, _ := rec.End("lab/r2", "w1")
	park := filepath.Base(testutil.ParkingPath(dir))
	for _, args := range [][]string{
		{"filter", "del", "dev", w1.Parked, "parent", "ffff:", "prio", "1"},
		{"filter", "add", "dev", w1.Parked, "parent", "ffff:", "protocol", "ip", "prio", "1", "u32", "match", "u32", "0", "0",
			"action", "mirred", "egress", "redirect", "dev", e1.Parked},
	} {
		if out, err := exec.Command("tc", append([]string{"-n", park}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("tc %v: %v: %s", args, err, out)
		}
	}
	_, errOut, code := ctl(t, nil, "link", "mirror", "--store", dir, "lab/r1:e1", "--to", "lab/sink:s1")
	if code == 0 {
		t.Fatalf("mirror to the sink with r2's filter rewritten: exit 0, %s", errOut)
	}
	t.Logf("the failed move: %s", errOut)
	toC, toSink, rec = mirrorState(t, dir)
	if len(toC) != 1 || toC[0] != rec.ID || len(toSink) != 0 {
		t.Errorf("after the failed move: lists c %q, sink %q; want c [%s], sink none", toC, toSink, rec.ID)
	}
	if m := rec.MirrorTo(); m == nil || m.String() != "lab/c:m1" {
		t.Errorf("after the failed move: the record mirrors to %v, want lab/c:m1", m)
	}
	if out := mustCtl(t, nil, "link", "show", "--store", dir, "lab/r1:e1"); !strings.Contains(out, "mirror   to lab/c:m1 (") {
		t.Errorf("link show after the failed move:\n%s", out)
	}
	// The move's first step (r1's end to the sink) was undone.
	parkNS, err := ns.GetNS(testutil.ParkingPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer parkNS.Close()
	p, err := link.OpenParking(nil, parkNS)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	st, err := store.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	crec, err := st.LinkAt(context.Background(), "lab/c", "m1")
	st.Close()
	if err != nil || crec == nil {
		t.Fatalf("c's link: %v, %v", crec, err)
	}
	m1, _, _ := crec.End("lab/c", "m1")
	if err := p.VerifyMirror(e1.ParkedIndex, m1.ParkedIndex); err != nil {
		t.Errorf("r1's parked end after the failed move: %v", err)
	}

	mustCNI(t, "DEL", dir, "r1", r1, r1Links)
	mustCNI(t, "DEL", dir, "r2", r2, r2Links)
	toC, toSink, rec = mirrorState(t, dir)
	if rec != nil || len(toC) != 0 || len(toSink) != 0 {
		t.Errorf("after both pods' DEL: record %+v, lists c %q, sink %q; want none", rec, toC, toSink)
	}
}
