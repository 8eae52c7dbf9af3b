package ctl

import (
	"strings"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/podlink"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// TestDiffSnapshots: each change between two reads of the store is told
// as the event its states name, with the kernel notes of its link.
func TestDiffSnapshots(t *testing.T) {
	snap := func(state podlink.State, settings string) linkSnap {
		return linkSnap{view: podlink.LinkView{ID: "l", State: state,
			Ends: [2]store.LinkEnd{{Pod: "lab/r1", IfName: "e1"}, {Pod: "lab/r2", IfName: "w1"}}}, settings: settings}
	}
	cases := []struct {
		name       string
		prev, next map[string]linkSnap
		want       []string
	}{
		{"made pending", nil, map[string]linkSnap{"l": snap(podlink.StatePending, "-")}, []string{"made"}},
		{"made up at once", nil, map[string]linkSnap{"l": snap(podlink.StateUp, "-")}, []string{"made", "stitched"}},
		{"pulled", map[string]linkSnap{"l": snap(podlink.StateUp, "-")}, map[string]linkSnap{"l": snap(podlink.StatePulled, "pulled")}, []string{"pulled"}},
		{"restored", map[string]linkSnap{"l": snap(podlink.StatePulled, "pulled")}, map[string]linkSnap{"l": snap(podlink.StateUp, "-")}, []string{"restored"}},
		{"impaired", map[string]linkSnap{"l": snap(podlink.StateUp, "-")}, map[string]linkSnap{"l": snap(podlink.StateImpaired, "rate 1mbit→lab/r1:e1")}, []string{"impaired"}},
		{"reset", map[string]linkSnap{"l": snap(podlink.StateImpaired, "rate 1mbit→lab/r1:e1")}, map[string]linkSnap{"l": snap(podlink.StateUp, "-")}, []string{"impaired"}},
		{"impaired while pulled", map[string]linkSnap{"l": snap(podlink.StatePulled, "pulled")}, map[string]linkSnap{"l": snap(podlink.StatePulled, "pulled; rate 1mbit→lab/r1:e1")}, []string{"impaired"}},
		{"parked", map[string]linkSnap{"l": snap(podlink.StateUp, "-")}, map[string]linkSnap{"l": snap(podlink.StateParked, "-")}, []string{"parked"}},
		{"broken", map[string]linkSnap{"l": snap(podlink.StateUp, "-")}, map[string]linkSnap{"l": snap(podlink.StateBroken, "-")}, []string{"broken"}},
		{"removed", map[string]linkSnap{"l": snap(podlink.StateParked, "-")}, nil, []string{"removed"}},
		{"unchanged", map[string]linkSnap{"l": snap(podlink.StateUp, "-")}, map[string]linkSnap{"l": snap(podlink.StateUp, "-")}, nil},
		{"mirrored", map[string]linkSnap{"l": snap(podlink.StateUp, "-")}, map[string]linkSnap{"l": snap(podlink.StateUp, "mirror→lab/c:m1")}, []string{"mirrored"}},
		{"unmirrored", map[string]linkSnap{"l": snap(podlink.StateUp, "mirror→lab/c:m1")}, map[string]linkSnap{"l": snap(podlink.StateUp, "-")}, []string{"mirrored"}},
		{"reset of both", map[string]linkSnap{"l": snap(podlink.StateImpaired, "rate 1mbit→lab/r1:e1; mirror→lab/c:m1")}, map[string]linkSnap{"l": snap(podlink.StateUp, "-")}, []string{"impaired", "mirrored"}},
	}
	for _, c := range cases {
		evs := diffSnapshots(c.prev, c.next, map[string][]string{"l": {"rp1 down"}}, time.Now())
		var got []string
		for _, e := range evs {
			got = append(got, e.Event)
		}
		if len(got) != len(c.want) {
			t.Errorf("%s: events %v, want %v", c.name, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s: events %v, want %v", c.name, got, c.want)
			}
		}
		if len(evs) > 0 && evs[0].Details == "" {
			t.Errorf("%s: the kernel note is not in the first event: %+v", c.name, evs[0])
		}
		if c.name == "impaired" && evs[0].Details != "rate 1mbit→lab/r1:e1; kernel: rp1 down" {
			t.Errorf("impaired details %q", evs[0].Details)
		}
		if c.name == "mirrored" && evs[0].Details != "mirror→lab/c:m1; kernel: rp1 down" {
			t.Errorf("mirrored details %q", evs[0].Details)
		}
		if c.name == "unmirrored" && !strings.HasPrefix(evs[0].Details, "no mirror") {
			t.Errorf("unmirrored details %q", evs[0].Details)
		}
	}
}
