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

// TestLinksQuotesControlCharacters: names written to the store (from
// annotations, CNI arguments or the kernel) reach the operator's terminal
// quoted when they hold control characters, in the table and the graph.
func TestLinksQuotesControlCharacters(t *testing.T) {
	dir := t.TempDir()
	t.Cleanup(func() { testutil.RemoveParking(dir) })
	st, err := store.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	evil := "lab/r\x1b[2J1"
	key := store.AttachmentKey{Network: "lab", ContainerID: "sb\r1", IfName: "eth0"}
	if err := st.PutPod(ctx, &store.PodRecord{Pod: evil, Attachment: key, Netns: "/run/netns/x\nlab/forged"}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutLink(ctx, &store.LinkRecord{ID: "l1", Ends: [2]store.LinkEnd{
		{Pod: evil, IfName: "e\a1", Declared: true}, {Pod: "lab/r2", IfName: "w1"},
	}}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	for _, args := range [][]string{{"links", "--store", dir}, {"links", "--store", dir, "--dot"}} {
		out := mustCtl(t, nil, args...)
		if i := strings.IndexFunc(out, func(r rune) bool { return r < 0x20 && r != '\n' || r == 0x7f }); i >= 0 {
			t.Errorf("%v printed a raw control character at %d:\n%q", args, i, out)
		}
		for _, want := range []string{`"lab/r\x1b[2J1"`, `"/run/netns/x\nlab/forged"`, `\r`, `"e\a1"`} {
			if args[len(args)-1] == "--dot" && (strings.HasPrefix(want, `"/run`) || want == `\r`) {
				continue // the graph shows no netns or attachment
			}
			if !strings.Contains(out, want) {
				t.Errorf("%v lacks %s:\n%s", args, want, out)
			}
		}
		if strings.Contains(out, "\nlab/forged") {
			t.Errorf("%v: a name forged a line:\n%s", args, out)
		}
	}
}
