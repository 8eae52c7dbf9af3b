package ctl_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testutil"
)

// plugin runs the ratchet binary for pod as containerd's CRI does.
func plugin(t *testing.T, cmd, dir, pod string, n ns.NetNS, annotation string) {
	t.Helper()
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"lab","type":"ratchet","store":{"dir":%q},
	  "capabilities":{"io.kubernetes.cri.pod-annotations":true},
	  "runtimeConfig":{"io.kubernetes.cri.pod-annotations":{"ratchet.cni.dev/links":%q}}}`, dir, annotation)
	c := exec.Command(filepath.Join(binDir, "ratchet"))
	c.Env = []string{"CNI_COMMAND=" + cmd, "CNI_CONTAINERID=sb-" + pod, "CNI_NETNS=" + n.Path(), "CNI_IFNAME=eth0",
		"CNI_PATH=" + binDir, "CNI_ARGS=K8S_POD_NAMESPACE=lab;K8S_POD_NAME=" + pod}
	c.Stdin = strings.NewReader(conf)
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", cmd, pod, err, out)
	}
}

func TestLinksShowsStates(t *testing.T) {
	dir := t.TempDir()
	t.Cleanup(func() { testutil.RemoveParking(dir) })
	r1, r2 := testutil.NewNS(t), testutil.NewNS(t)
	plugin(t, "ADD", dir, "r1", r1, `[{"name":"e1","peer":{"pod":"r2","name":"w1"}}]`)
	plugin(t, "ADD", dir, "r2", r2, `[{"name":"w1","peer":{"pod":"r1","name":"e1"}},{"name":"e2","peer":{"pod":"r3","name":"w1"}}]`)
	out := mustCtl(t, nil, "links", "--store", dir)
	for _, want := range []string{"lab/r1", "lab/r2", "up lab/r1:e1 lab/r2:w1", "pending lab/r2:e2 lab/r3:w1"} {
		if !hasRow(out, want) {
			t.Errorf("links output lacks %q:\n%s", want, out)
		}
	}
	dot := mustCtl(t, nil, "links", "--store", dir, "--dot")
	if !strings.HasPrefix(dot, "graph ratchet {") || !strings.Contains(dot, `"lab/r1" -- "lab/r2"`) || !strings.Contains(dot, `label="up"`) {
		t.Errorf("dot output:\n%s", dot)
	}
	plugin(t, "DEL", dir, "r2", r2, "")
	if out := mustCtl(t, nil, "links", "--store", dir); !hasRow(out, "parked lab/r1:e1 lab/r2:w1") {
		t.Errorf("after r2's DEL:\n%s", out)
	}
	// Pull r1's parked end out from under the store: broken.
	st, err := store.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := st.LinksOf(context.Background(), "lab/r1")
	st.Close()
	path := testutil.ParkingPath(dir)
	parked := recs[0].Ends[0].Parked
	if recs[0].Ends[1].Pod == "lab/r1" {
		parked = recs[0].Ends[1].Parked
	}
	if out, err := exec.Command("ip", "-n", filepath.Base(path), "link", "del", parked).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if out := mustCtl(t, nil, "links", "--store", dir); !hasRow(out, "broken lab/r1:e1 lab/r2:w1") {
		t.Errorf("after the parked end vanished:\n%s", out)
	}
}

// hasRow reports whether a table row, with its columns joined by single
// spaces, starts with want.
func hasRow(out, want string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.Join(strings.Fields(line), " "), want) {
			return true
		}
	}
	return false
}
