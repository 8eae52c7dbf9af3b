package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestAgentHasNoCLI: ratchetd runs the live-lab operations through
// internal/labop, not through ratchetctl's front-end, so it links neither
// internal/ctl nor what only the CLI needs: libcni (ratchetctl run) and
// gopacket (ratchetctl capture).
func TestAgentHasNoCLI(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/ratchet-cni/ratchet/cmd/ratchetd").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if p == "github.com/ratchet-cni/ratchet/internal/ctl" ||
			strings.HasPrefix(p, "github.com/gopacket/gopacket") ||
			strings.HasPrefix(p, "github.com/containernetworking/cni/libcni") {
			t.Errorf("ratchetd imports %s", p)
		}
	}
	// The list is the real one: ratchetd does run the operations.
	if !strings.Contains(string(out), "github.com/ratchet-cni/ratchet/internal/labop") {
		t.Fatalf("go list -deps looks wrong (no internal/labop):\n%s", out)
	}
}
