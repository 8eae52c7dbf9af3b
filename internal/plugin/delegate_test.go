package plugin_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/ratchet-cni/ratchet/internal/testutil"
)

// Ratchet compatibility mode, with the reference ptp + host-local as the
// delegate and as the boot network, run "on" a simulated node.
func TestCompatibilityMode(t *testing.T) {
	ptp := func(dir string) map[string]any {
		return map[string]any{"type": "ptp", "ipam": map[string]any{"type": "host-local", "subnet": "203.0.113.0/24", "dataDir": dir}}
	}
	leases := func(dir string) int {
		files, _ := filepath.Glob(filepath.Join(dir, "*", "203.0.113.*"))
		return len(files)
	}
	t.Run("a pod with no links gets the delegate", func(t *testing.T) {
		node, pod, dir := testutil.NewNS(t), testutil.NewNS(t), t.TempDir()
		c := call{cmd: "ADD", netns: pod.Path(), node: node, conf: confJSON(t, "1.0.0", dir, map[string]any{"delegate": ptp(dir + "/ipam")})}
		res, err := current.NewResultFromResult(mustResult(t, mustRun(t, c)))
		if err != nil {
			t.Fatal(err)
		}
		if len(res.IPs) != 1 || !strings.HasPrefix(res.IPs[0].Address.String(), "203.0.113.") {
			t.Fatalf("delegate's result: %+v", res)
		}
		if got := testutil.Links(t, pod); !slices.Equal(got, []string{"eth0"}) || leases(dir+"/ipam") != 1 {
			t.Fatalf("pod holds %v, %d leases", got, leases(dir+"/ipam"))
		}
		c.cmd = "DEL"
		mustRun(t, c)
		if got := testutil.Links(t, node); len(got) != 0 || leases(dir+"/ipam") != 0 {
			t.Fatalf("after DEL the node holds %v and %d leases remain", got, leases(dir+"/ipam"))
		}
	})
	t.Run("a pod with links gets the boot network first", func(t *testing.T) {
		node, pod, peer, dir := testutil.NewNS(t), testutil.NewNS(t), testutil.NewNS(t), t.TempDir()
		c := call{cmd: "ADD", netns: pod.Path(), node: node, conf: confJSON(t, "1.0.0", dir, map[string]any{
			"bootNetwork": ptp(dir + "/ipam"),
			"links":       []any{vethTo("in1", "192.0.2.1/24", peer, "in2", "192.0.2.2/24")}})}
		res, err := current.NewResultFromResult(mustResult(t, mustRun(t, c)))
		if err != nil {
			t.Fatal(err)
		}
		if len(res.IPs) != 2 || !strings.HasPrefix(res.IPs[0].Address.String(), "203.0.113.") || res.IPs[1].Address.String() != "192.0.2.1/24" {
			t.Fatalf("result IPs %v: want the boot network's, then the link's", res.IPs)
		}
		testutil.MustPing(t, pod, "192.0.2.2")
		c.cmd = "DEL"
		mustRun(t, c)
		noLinks(t, pod, peer, node)
		if n := leases(dir + "/ipam"); n != 0 {
			t.Fatalf("%d leases left", n)
		}
	})
	t.Run("a failed ADD undoes the boot network", func(t *testing.T) {
		node, pod, dir := testutil.NewNS(t), testutil.NewNS(t), t.TempDir()
		c := call{cmd: "ADD", netns: pod.Path(), node: node, conf: confJSON(t, "1.0.0", dir, map[string]any{
			"bootNetwork": ptp(dir + "/ipam"),
			"links":       []any{map[string]any{"name": "mv0", "macvlan": map[string]any{"master": "absent0"}}}})}
		if _, cniErr := run(t, c); cniErr == nil || !strings.Contains(cniErr.Msg, "absent0") {
			t.Fatalf("ADD: %v", cniErr)
		}
		noLinks(t, pod, node)
		if n := leases(dir + "/ipam"); n != 0 {
			t.Fatalf("%d leases left after a failed ADD", n)
		}
		if entries, _ := os.ReadDir(dir); records(t, dir) != 0 {
			t.Fatalf("records left: %v", entries)
		}
	})
	t.Run("a delegate type is a file name in CNI_PATH, never a path", func(t *testing.T) {
		pod, dir := testutil.NewNS(t), t.TempDir()
		_, cniErr := run(t, call{cmd: "ADD", netns: pod.Path(), conf: confJSON(t, "1.0.0", dir, map[string]any{
			"delegate": map[string]any{"type": "../../../bin/true"}})})
		if cniErr == nil || !strings.Contains(cniErr.Msg, "not a file name") {
			t.Fatalf("got %v", cniErr)
		}
		if records(t, dir) != 0 {
			t.Fatal("record left")
		}
	})
	t.Run("a link may not take the boot network's interface", func(t *testing.T) {
		pod, peer, dir := testutil.NewNS(t), testutil.NewNS(t), t.TempDir()
		_, cniErr := run(t, call{cmd: "ADD", netns: pod.Path(), conf: confJSON(t, "1.0.0", dir, map[string]any{
			"bootNetwork": ptp(dir + "/ipam"),
			"links":       []any{vethTo("eth0", "192.0.2.1/24", peer, "in2", "192.0.2.2/24")}})})
		if cniErr == nil || cniErr.Code != 7 || !strings.Contains(cniErr.Msg, "bootNetwork") {
			t.Fatalf("got %v", cniErr)
		}
	})
}
