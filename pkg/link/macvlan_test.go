package link_test

import (
	"slices"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/linkparam"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// The kernel modes pkg/link maps are exactly the names config and CLI
// validation accept.
func TestMacvlanModesMatchTheLimits(t *testing.T) {
	if len(link.MacvlanModes) != len(linkparam.MacvlanModes) {
		t.Fatalf("pkg/link knows %d modes, linkparam %d", len(link.MacvlanModes), len(linkparam.MacvlanModes))
	}
	for name := range link.MacvlanModes {
		if !slices.Contains(linkparam.MacvlanModes, name) {
			t.Errorf("mode %q is not in linkparam.MacvlanModes", name)
		}
	}
}
