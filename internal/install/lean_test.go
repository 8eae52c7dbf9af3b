package install_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCtlHasNoKubernetesClient: ratchetctl, whose uninstall container asks
// the API server for its DaemonSet (install.APIServer), does that with
// net/http and links no Kubernetes client library.
func TestCtlHasNoKubernetesClient(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/ratchet-cni/ratchet/cmd/ratchetctl").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "k8s.io/") || strings.HasPrefix(p, "sigs.k8s.io/") || p == "github.com/ratchet-cni/ratchet/internal/kube" {
			t.Errorf("ratchetctl imports %s", p)
		}
	}
	if !strings.Contains(string(out), "github.com/ratchet-cni/ratchet/internal/install") {
		t.Fatalf("go list -deps looks wrong (no internal/install):\n%s", out)
	}
}
