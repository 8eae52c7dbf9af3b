package plugin_test

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testutil"
)

// TestDelActsOnlyInTheRecordedNetns: an attachment whose pod namespace was
// recorded as /proc/<pid>/ns/net outlives that process; once the path
// names another namespace (the pid reused: here, the record rewritten to
// point at the node's own namespace or at an unrelated one), DEL deletes
// nothing there, not even a netdev carrying the attachment's marker and
// group. It still cleans the namespaces that are the recorded ones.
func TestDelActsOnlyInTheRecordedNetns(t *testing.T) {
	for _, target := range []string{"node", "other"} {
		t.Run(target, func(t *testing.T) {
			node, pod, peer, other := testutil.NewNS(t), testutil.NewNS(t), testutil.NewNS(t), testutil.NewNS(t)
			dir := t.TempDir()
			t.Cleanup(func() { testutil.RemoveParking(dir) })
			sleeper := exec.Command("nsenter", "--net="+pod.Path(), "sleep", "60")
			if err := sleeper.Start(); err != nil {
				t.Fatal(err)
			}
			exited := false
			t.Cleanup(func() {
				if !exited {
					_ = sleeper.Process.Kill()
					_ = sleeper.Wait()
				}
			})
			testutil.WaitInNS(t, sleeper.Process.Pid, pod)
			procPath := fmt.Sprintf("/proc/%d/ns/net", sleeper.Process.Pid)
			conf := confJSON(t, "1.0.0", dir, map[string]any{"links": []any{vethTo("in1", "192.0.2.1/24", peer, "in2", "192.0.2.2/24")}})
			mustRun(t, call{cmd: "ADD", netns: procPath, conf: conf, node: node})
			if !slices.Contains(testutil.Links(t, peer), "in2") {
				t.Fatal("ADD made no peer end")
			}
			_ = sleeper.Process.Kill()
			_ = sleeper.Wait()
			exited = true

			victim := map[string]ns.NetNS{"node": node, "other": other}[target]
			st, err := store.OpenLocal(dir)
			if err != nil {
				t.Fatal(err)
			}
			key := store.AttachmentKey{Network: "lab", ContainerID: "ctr1", IfName: "eth0"}
			rec, err := st.Attachment(context.Background(), key)
			if err != nil || rec == nil {
				st.Close()
				t.Fatalf("record: %v, %v", rec, err)
			}
			if rec.NetnsID == nil || len(rec.PeerNetnsIDs) != 1 {
				st.Close()
				t.Fatalf("ADD recorded no namespace identity: %+v", rec)
			}
			rec.Netns = victim.Path()
			err = st.PutAttachment(context.Background(), rec)
			st.Close()
			if err != nil {
				t.Fatal(err)
			}
			// A netdev there that DEL would take for the attachment's own.
			h := testutil.Handle(t, victim)
			if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "bait"}, PeerName: "bait2"}); err != nil {
				t.Fatal(err)
			}
			bait, err := h.LinkByName("bait")
			if err != nil {
				t.Fatal(err)
			}
			if err := h.LinkSetAlias(bait, rec.Marker+"in1"); err != nil {
				t.Fatal(err)
			}
			if err := h.LinkSetGroup(bait, int(rec.Group)); err != nil {
				t.Fatal(err)
			}

			mustRun(t, call{cmd: "DEL", netns: "", conf: conf, node: node})
			if !slices.Contains(testutil.Links(t, victim), "bait") {
				t.Errorf("DEL deleted a netdev in the %s namespace the stale path now names", target)
			}
			if slices.Contains(testutil.Links(t, peer), "in2") {
				t.Error("DEL left the end in the recorded peer namespace")
			}
		})
	}
}
