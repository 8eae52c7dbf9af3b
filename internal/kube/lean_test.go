package kube_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestPluginHasNoKubernetesClient: the plugin binary, on every pod's ADD
// path, links neither client-go nor this package; ratchetd alone talks
// to the API server.
func TestPluginHasNoKubernetesClient(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/ratchet-cni/ratchet/cmd/ratchet").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "k8s.io/client-go") || strings.HasPrefix(p, "k8s.io/apimachinery") || p == "github.com/ratchet-cni/ratchet/internal/kube" {
			t.Errorf("the plugin imports %s", p)
		}
	}
	if !strings.Contains(string(out), "github.com/ratchet-cni/ratchet/internal/topology") {
		t.Fatalf("go list -deps looks wrong (no internal/topology):\n%s", out)
	}
}
