package link_test

import (
	"net"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/testutil"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// TestStitchJoinsTwoParkedEnds: pod A's veth and pod B's veth both end in a
// parking namespace; stitching the parked ends makes one cable A <-> B.
func TestStitchJoinsTwoParkedEnds(t *testing.T) {
	podA, podB, park := testutil.NewNS(t), testutil.NewNS(t), testutil.NewNS(t)
	mk := func(pod *link.Endpoint, parked string) *link.Veth {
		return &link.Veth{A: *pod, B: link.Endpoint{NS: park, Name: parked}, Marker: marker(parked)}
	}
	va := mk(&link.Endpoint{NS: podA, Name: "a1", Addrs: []*net.IPNet{testutil.MustCIDR("192.0.2.1/24"), testutil.MustCIDR("2001:db8::1/64")}}, "pa")
	vb := mk(&link.Endpoint{NS: podB, Name: "b1", Addrs: []*net.IPNet{testutil.MustCIDR("192.0.2.2/24"), testutil.MustCIDR("2001:db8::2/64")}}, "pb")
	for _, v := range []*link.Veth{va, vb} {
		if err := v.Create(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	h := testutil.Handle(t, park)
	pa, _ := h.LinkByName("pa")
	pb, _ := h.LinkByName("pb")
	if err := link.Stitch(nil, park, pa.Attrs().Index, pb.Attrs().Index); err != nil {
		t.Fatal(err)
	}
	testutil.MustPing(t, podA, "192.0.2.2")
	testutil.MustPing(t, podB, "2001:db8::1")
	if to, err := link.Stitched(nil, park, pa.Attrs().Index); err != nil || to != pb.Attrs().Index {
		t.Fatalf("Stitched(pa) = %d, %v; want %d", to, err, pb.Attrs().Index)
	}
	// The same through a Parking, with the interface listed already; one
	// not stitched, and one gone, read as 0.
	p, err := link.OpenParking(nil, park)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for index, want := range map[int]int{pa.Attrs().Index: pb.Attrs().Index, 1: 0, 1 << 20: 0} {
		if to, err := p.StitchedListed(index); err != nil || to != want {
			t.Errorf("StitchedListed(%d) = %d, %v; want %d", index, to, err, want)
		}
	}
	// Re-stitching is idempotent.
	if err := link.Stitch(nil, park, pa.Attrs().Index, pb.Attrs().Index); err != nil {
		t.Fatal(err)
	}
	testutil.MustPing(t, podA, "192.0.2.2")
}
