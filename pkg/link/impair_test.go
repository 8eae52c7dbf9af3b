package link_test

import (
	"errors"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/testutil"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// stitchedPods makes two pods joined through two parked ends stitched in
// park, and returns the parked ends' indexes (podA's, podB's).
func stitchedPods(t *testing.T, podA, podB, park ns.NetNS) (int, int) {
	t.Helper()
	for _, v := range []*link.Veth{
		{A: link.Endpoint{NS: podA, Name: "a1", Addrs: []*net.IPNet{testutil.MustCIDR("192.0.2.1/24")}}, B: link.Endpoint{NS: park, Name: "pa"}, Marker: marker("pa")},
		{A: link.Endpoint{NS: podB, Name: "b1", Addrs: []*net.IPNet{testutil.MustCIDR("192.0.2.2/24")}}, B: link.Endpoint{NS: park, Name: "pb"}, Marker: marker("pb")},
	} {
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
	return pa.Attrs().Index, pb.Attrs().Index
}

// TestImpairRateShapesTowardOnePod: a rate on pod B's parked end (a token
// bucket; this needs no netem) shapes what flows toward B, so a burst of
// large echo requests mostly goes unanswered; cleared, all are answered.
func TestImpairRateShapesTowardOnePod(t *testing.T) {
	podA, podB, park := testutil.NewNS(t), testutil.NewNS(t), testutil.NewNS(t)
	_, pb := stitchedPods(t, podA, podB, park)
	testutil.MustPing(t, podA, "192.0.2.2")
	p, err := link.OpenParking(nil, park)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	slow := &link.Impairment{Rate: 200_000}
	if err := p.Impair(pb, slow); err != nil {
		t.Fatal(err)
	}
	if err := p.VerifyImpairment(pb, slow); err != nil {
		t.Fatalf("verify after impair: %v", err)
	}
	var mm *link.MismatchError
	if err := p.VerifyImpairment(pb, &link.Impairment{Rate: 400_000}); !errors.As(err, &mm) {
		t.Fatalf("verify against another rate: %v, want a mismatch", err)
	}
	// 40 requests of 1400 bytes, 5 ms apart, are 57 kB offered in 0.2 s;
	// a 200 kbit/s (25 kB/s) bucket of 16 KiB takes 1.6 s to carry them.
	if got, took, err := testutil.Burst(podA, "192.0.2.2", 40, 1400); err != nil || took < time.Second {
		out, _ := exec.Command("nsenter", "--net="+park.Path(), "tc", "-s", "qdisc", "show").CombinedOutput()
		t.Fatalf("%d of 40 large requests answered in %v through a 200kbit bucket (%v)\n%s", got, took, err, out)
	}
	// Impairing again replaces; clearing twice is fine.
	if err := p.Impair(pb, &link.Impairment{Rate: 1_000_000_000}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := p.ClearImpairment(pb); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.VerifyImpairment(pb, slow); !errors.As(err, &mm) {
		t.Fatalf("verify after clear: %v, want a mismatch", err)
	}
	if got, took, err := testutil.Burst(podA, "192.0.2.2", 40, 1400); err != nil || got < 38 || took > time.Second {
		t.Fatalf("after clear: %d of 40 answered in %v, %v", got, took, err)
	}
	if err := p.ClearImpairment(9999); err != nil {
		t.Fatalf("clear a gone ifindex: %v", err)
	}
}

// TestImpairNetem: a delay takes netem. Where the kernel lacks it, Impair
// fails with ErrNoNetem naming the module, and what was there stays.
func TestImpairNetem(t *testing.T) {
	podA, podB, park := testutil.NewNS(t), testutil.NewNS(t), testutil.NewNS(t)
	pa, pb := stitchedPods(t, podA, podB, park)
	p, err := link.OpenParking(nil, park)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	rate := &link.Impairment{Rate: 10_000_000}
	if err := p.Impair(pa, rate); err != nil {
		t.Fatal(err)
	}
	delay := &link.Impairment{Delay: 30 * time.Millisecond, Rate: 10_000_000}
	err = p.Impair(pa, delay)
	if errors.Is(err, link.ErrNoNetem) {
		if !strings.Contains(err.Error(), "sch_netem") {
			t.Errorf("error does not name the module: %v", err)
		}
		if err := p.VerifyImpairment(pa, rate); err != nil {
			t.Errorf("the failed impair changed the qdisc: %v", err)
		}
		t.Skipf("kernel without netem: impair failed cleanly with %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Impair(pb, delay); err != nil {
		t.Fatal(err)
	}
	if err := p.VerifyImpairment(pa, delay); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	testutil.MustPing(t, podA, "192.0.2.2")
	// two requests 200 ms apart, each delayed 30 ms each way
	if rtt := time.Since(start); rtt < 260*time.Millisecond {
		t.Fatalf("two pings took %v through 30 ms each way", rtt)
	}
}
