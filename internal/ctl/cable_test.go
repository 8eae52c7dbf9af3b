package ctl_test

import (
	"testing"

	"github.com/ratchet-cni/ratchet/internal/labop"
)

// TestCableIsLinkDownUp: labop.Cable pulls and plugs a cable as `link
// down|up` does (ratchetctl sees it), and refuses what they refuse as
// bad arguments.
func TestCableIsLinkDownUp(t *testing.T) {
	dir, r1, _ := lab(t)
	if err := labop.Cable(dir, "", "lab/r1:e1", true); err != nil {
		t.Fatal(err)
	}
	if doc := readStats(t, dir); doc.Links[0].State != "pulled" || doc.Links[0].Settings == nil || !doc.Links[0].Settings.Pulled {
		t.Fatalf("after Cable(pull): %+v", doc.Links[0])
	}
	waitCarrier(t, r1, "e1", false)
	if err := labop.Cable(dir, "", "lab/r2:w1", false); err != nil {
		t.Fatal(err)
	}
	if doc := readStats(t, dir); doc.Links[0].State != "up" {
		t.Fatalf("after Cable(plug): %+v", doc.Links[0])
	}
	waitCarrier(t, r1, "e1", true)
	for _, end := range []string{"r1:e1", "lab/r1", "lab/r1:", "/r1:e1", "lab/r9:e1", "lab/r1:e9"} {
		err := labop.Cable(dir, "", end, true)
		if err == nil || !labop.IsBadArgument(err) {
			t.Errorf("Cable(%q): %v, want a bad argument", end, err)
		}
	}
	if doc := readStats(t, dir); doc.Links[0].State != "up" {
		t.Fatalf("refused pulls changed the link: %+v", doc.Links[0])
	}
}
