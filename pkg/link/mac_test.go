package link_test

import (
	"strings"
	"testing"

	"github.com/ratchet-cni/ratchet/pkg/link"
)

func TestRandomName(t *testing.T) {
	for _, prefix := range []string{"", "rp", "ratchet-tmp", "a-prefix-far-too-long-for-a-netdev"} {
		a, b := link.RandomName(prefix), link.RandomName(prefix)
		if len(a) != 15 {
			t.Errorf("RandomName(%q) = %q: %d bytes, want 15", prefix, a, len(a))
		}
		kept := prefix
		if len(kept) > 11 {
			kept = kept[:11]
		}
		if !strings.HasPrefix(a, kept) || strings.Trim(a[len(kept):], "0123456789abcdef") != "" {
			t.Errorf("RandomName(%q) = %q: want %q and hex digits", prefix, a, kept)
		}
		if a == b {
			t.Errorf("RandomName(%q) gave %q twice", prefix, a)
		}
	}
}

func TestRandomMAC(t *testing.T) {
	a, b := link.RandomMAC(), link.RandomMAC()
	if len(a) != 6 || a[0]&0x01 != 0 || a[0]&0x02 == 0 {
		t.Errorf("RandomMAC() = %s: want a locally administered unicast address", a)
	}
	if a.String() == b.String() {
		t.Errorf("RandomMAC() gave %s twice", a)
	}
}
