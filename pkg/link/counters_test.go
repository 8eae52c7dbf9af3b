package link_test

import (
	"errors"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/testutil"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// TestCountersOfParkedEnds: one dump gives each parked end's name, its
// counters as the netlink library reads them, and carrier changes that
// grow when the end goes down and up.
func TestCountersOfParkedEnds(t *testing.T) {
	podA, podB, park := testutil.NewNS(t), testutil.NewNS(t), testutil.NewNS(t)
	pa, pb := stitchedPods(t, podA, podB, park)
	if got, _, err := testutil.Burst(podA, "192.0.2.2", 20, 500); err != nil || got != 20 {
		t.Fatalf("pings: %d of 20 answered, %v", got, err)
	}
	p, err := link.OpenParking(nil, park)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	before, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	h := testutil.Handle(t, park)
	for idx, name := range map[int]string{pa: "pa", pb: "pb"} {
		c, ok := before[idx]
		if !ok || c.Name != name {
			t.Fatalf("ifindex %d: %+v, want %s", idx, c, name)
		}
		l, err := h.LinkByIndex(idx)
		if err != nil {
			t.Fatal(err)
		}
		// Nothing flows now: the library's reading is the same.
		s := l.Attrs().Statistics
		if c.RxPackets != s.RxPackets || c.TxPackets != s.TxPackets || c.RxBytes != s.RxBytes || c.TxBytes != s.TxBytes ||
			c.RxDropped != s.RxDropped || c.TxDropped != s.TxDropped {
			t.Errorf("%s: %+v, netlink reads %+v", name, c.Counters, *s)
		}
		if c.TxPackets < 20 || c.RxPackets < 20 {
			t.Errorf("%s: %d sent, %d received; want at least 20 each", name, c.TxPackets, c.RxPackets)
		}
	}
	if err := p.SetUp(pa, false); err != nil {
		t.Fatal(err)
	}
	if err := p.SetUp(pa, true); err != nil {
		t.Fatal(err)
	}
	after, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if b, a := before[pa].CarrierChanges, after[pa].CarrierChanges; a < b+2 {
		t.Errorf("pa's carrier changes after down and up: %d, before %d", a, b)
	}
	p.Close()
	if _, err := p.Counters(); !errors.Is(err, link.ErrClosed) {
		t.Errorf("counters of a closed Parking: %v, want ErrClosed", err)
	}
}
