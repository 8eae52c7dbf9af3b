package link_test

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/testutil"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// collector makes pod C's interface c1 with its parked end pc, up, and
// returns pc's index.
func collector(t *testing.T, podC, park ns.NetNS) int {
	t.Helper()
	v := &link.Veth{A: link.Endpoint{NS: podC, Name: "c1"}, B: link.Endpoint{NS: park, Name: "pc"}, Marker: marker("pc")}
	if err := v.Create(ctx, nil); err != nil {
		t.Fatal(err)
	}
	return v.B.Index
}

const quiet = 300 * time.Millisecond

// wantEchoes checks the echoes s saw: want counts them by their String.
func wantEchoes(t *testing.T, where string, s *testutil.Sniffer, want map[string]int) {
	t.Helper()
	es, err := s.Echoes(quiet)
	if err != nil {
		t.Fatal(err)
	}
	got := testutil.CountEchoes(es)
	if len(got) != len(want) {
		t.Fatalf("%s saw %v, want %v", where, got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Fatalf("%s saw %v, want %v", where, got, want)
		}
	}
}

// TestMirrorCopiesBothDirections: mirroring both parked ends of a stitched
// link to a collector's parked end gives the collector a copy of every
// frame in both directions, and the link's traffic is unchanged: each
// request reaches B once, each reply A once. A re-stitch keeps the
// mirror; unmirror stops the copies; a collector that goes leaves the
// link working.
func TestMirrorCopiesBothDirections(t *testing.T) {
	podA, podB, podC, park := testutil.NewNS(t), testutil.NewNS(t), testutil.NewNS(t), testutil.NewNS(t)
	pa, pb := stitchedPods(t, podA, podB, park)
	pc := collector(t, podC, park)
	p, err := link.OpenParking(nil, park)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	testutil.MustPing(t, podA, "192.0.2.2") // neighbours resolved: only echoes from here on
	for _, end := range []int{pa, pb} {
		if err := p.Mirror(end, pc); err != nil {
			t.Fatal(err)
		}
		if err := p.VerifyMirror(end, pc); err != nil {
			t.Fatal(err)
		}
	}
	var mm *link.MismatchError
	if err := p.VerifyMirror(pa, 0); !errors.As(err, &mm) {
		t.Fatalf("verify no mirror on a mirrored end: %v, want a mismatch", err)
	}
	if to, err := p.Stitched(pa); err != nil || to != pb {
		t.Fatalf("Stitched(pa) = %d, %v after mirroring; want %d", to, err, pb)
	}
	sa, sb, sc := testutil.Sniff(t, podA, "a1"), testutil.Sniff(t, podB, "b1"), testutil.Sniff(t, podC, "c1")
	both := map[string]int{"request 192.0.2.1>192.0.2.2": 3, "reply 192.0.2.2>192.0.2.1": 3}
	testutil.PingExactly(t, podA, "192.0.2.2", 3)
	wantEchoes(t, "the collector", sc, both)
	wantEchoes(t, "pod B", sb, map[string]int{"request 192.0.2.1>192.0.2.2": 3})
	wantEchoes(t, "pod A", sa, map[string]int{"reply 192.0.2.2>192.0.2.1": 3})

	// Stitching again replaces the stitch alone.
	if err := p.Stitch(pa, pb); err != nil {
		t.Fatal(err)
	}
	if err := p.VerifyMirror(pa, pc); err != nil {
		t.Fatalf("after a re-stitch: %v", err)
	}
	testutil.PingExactly(t, podA, "192.0.2.2", 3)
	wantEchoes(t, "the collector after a re-stitch", sc, both)
	sa.Echoes(quiet)
	sb.Echoes(quiet)

	// Unmirror stops the copies (twice is fine), and leaves the stitch.
	for range 2 {
		for _, end := range []int{pa, pb} {
			if err := p.Unmirror(end); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := p.VerifyMirror(pa, 0); err != nil {
		t.Fatal(err)
	}
	testutil.PingExactly(t, podA, "192.0.2.2", 3)
	wantEchoes(t, "the collector after unmirror", sc, map[string]int{})
	wantEchoes(t, "pod B after unmirror", sb, map[string]int{"request 192.0.2.1>192.0.2.2": 3})

	// The collector goes: the mirror loses its target, the link works on.
	for _, end := range []int{pa, pb} {
		if err := p.Mirror(end, pc); err != nil {
			t.Fatal(err)
		}
	}
	h := testutil.Handle(t, park)
	l, err := h.LinkByIndex(pc)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkDel(l); err != nil {
		t.Fatal(err)
	}
	if to, err := p.Mirrored(pa); err != nil || to != -1 {
		t.Fatalf("Mirrored(pa) = %d, %v with the collector gone; want -1", to, err)
	}
	if err := p.VerifyMirror(pa, pc); !errors.As(err, &mm) {
		t.Fatalf("verify a mirror whose collector went: %v, want a mismatch", err)
	}
	sa.Echoes(quiet)
	testutil.PingExactly(t, podA, "192.0.2.2", 3)
	wantEchoes(t, "pod A with the collector gone", sa, map[string]int{"reply 192.0.2.2>192.0.2.1": 3})
	if err := p.Unmirror(pa); err != nil {
		t.Fatal(err)
	}
	if err := p.Mirror(pa, pa); err == nil {
		t.Fatal("mirroring an end to itself succeeded")
	}
	if err := p.Mirror(pa, -1); err == nil {
		t.Fatal("mirroring an end to ifindex -1 succeeded")
	}
	if err := p.Unmirror(9999); err != nil {
		t.Fatalf("unmirror a gone ifindex: %v", err)
	}
}

// TestMirrorBeforeStitch: an end mirrored before it is stitched keeps the
// mirror when the stitch comes.
func TestMirrorBeforeStitch(t *testing.T) {
	podA, podB, podC, park := testutil.NewNS(t), testutil.NewNS(t), testutil.NewNS(t), testutil.NewNS(t)
	pc := collector(t, podC, park)
	var ends []int
	for _, v := range []*link.Veth{
		{A: link.Endpoint{NS: podA, Name: "a1", Addrs: []*net.IPNet{testutil.MustCIDR("192.0.2.1/24")}}, B: link.Endpoint{NS: park, Name: "pa"}, Marker: marker("pa")},
		{A: link.Endpoint{NS: podB, Name: "b1", Addrs: []*net.IPNet{testutil.MustCIDR("192.0.2.2/24")}}, B: link.Endpoint{NS: park, Name: "pb"}, Marker: marker("pb")},
	} {
		if err := v.Create(ctx, nil); err != nil {
			t.Fatal(err)
		}
		ends = append(ends, v.B.Index)
	}
	p, err := link.OpenParking(nil, park)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, end := range ends {
		if err := p.Mirror(end, pc); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Stitch(ends[0], ends[1]); err != nil {
		t.Fatal(err)
	}
	testutil.MustPing(t, podA, "192.0.2.2")
	sc := testutil.Sniff(t, podC, "c1")
	testutil.PingExactly(t, podA, "192.0.2.2", 2)
	wantEchoes(t, "the collector", sc, map[string]int{"request 192.0.2.1>192.0.2.2": 2, "reply 192.0.2.2>192.0.2.1": 2})
}

// TestUnmirrorWithoutMirror: unmirroring an interface that has no mirror
// is a no-op without error, whether it has no ingress qdisc, only a
// stitch (whose node stays and still redirects), a mirror already
// removed, or is gone. Unmirror tolerates ENOENT and a gone interface
// only (not EINVAL, a malformed delete's answer), so this also checks
// that none of these cases gets EINVAL from the kernel.
func TestUnmirrorWithoutMirror(t *testing.T) {
	podA, podB, podC, park := testutil.NewNS(t), testutil.NewNS(t), testutil.NewNS(t), testutil.NewNS(t)
	pc := collector(t, podC, park)
	p, err := link.OpenParking(nil, park)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// No qdisc at all: the collector's own parked end.
	if err := p.Unmirror(pc); err != nil {
		t.Fatalf("unmirror, no ingress qdisc: %v", err)
	}
	if err := p.VerifyMirror(pc, 0); err != nil {
		t.Fatal(err)
	}
	pa, pb := stitchedPods(t, podA, podB, park)
	// Stitched, never mirrored.
	if err := p.Unmirror(pa); err != nil {
		t.Fatalf("unmirror, stitched only: %v", err)
	}
	if to, err := link.Stitched(nil, park, pa); err != nil || to != pb {
		t.Fatalf("after unmirror of a stitched end: stitched to %d (%v), want %d", to, err, pb)
	}
	testutil.MustPing(t, podA, "192.0.2.2")
	// Mirrored, then unmirrored twice.
	if err := p.Mirror(pa, pc); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := p.Unmirror(pa); err != nil {
			t.Fatalf("unmirror #%d: %v", i+1, err)
		}
		if err := p.VerifyMirror(pa, 0); err != nil {
			t.Fatalf("after unmirror #%d: %v", i+1, err)
		}
	}
	testutil.MustPing(t, podA, "192.0.2.2")
	// Gone.
	if err := p.Unmirror(1 << 20); err != nil {
		t.Fatalf("unmirror of a gone ifindex: %v", err)
	}
}
