package ctl_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/labop"
	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/internal/podlink"
)

func specOf(t *testing.T, s string) netconf.LinkSpec {
	t.Helper()
	var spec netconf.LinkSpec
	if err := json.Unmarshal([]byte(s), &spec); err != nil {
		t.Fatal(err)
	}
	return spec
}

// TestApplyAndRemoveLink: what ratchetd's Kubernetes watcher runs.
// RemoveLink takes a link the pods declared at their ADD out of both pods,
// and is idempotent; ApplyLink makes it again, leaves it alone when asked
// again with the same specs, and makes it anew when a spec changed;
// NodeLinks reports the ends' MACs as the pods see them.
func TestApplyAndRemoveLink(t *testing.T) {
	dir, r1, r2 := lab(t)
	ctx := context.Background()
	if err := labop.RemoveLink(ctx, dir, "", "lab/r1", "e1"); err != nil {
		t.Fatal(err)
	}
	gone(t, r1, "e1")
	gone(t, r2, "w1")
	if err := labop.RemoveLink(ctx, dir, "", "lab/r1", "e1"); err != nil {
		t.Fatalf("RemoveLink again: %v", err)
	}
	if nls, err := labop.NodeLinks(ctx, dir); err != nil || len(nls) != 0 {
		t.Fatalf("NodeLinks after RemoveLink: %+v, %v", nls, err)
	}

	pods := [2]string{"lab/r1", "lab/r2"}
	specs := [2]netconf.LinkSpec{specOf(t, r1Spec("192.0.2.1/24")), specOf(t, `{"name":"w1","ips":["192.0.2.2/24"],"peer":{"pod":"r1","name":"e1"}}`)}
	if err := labop.ApplyLink(ctx, dir, "", pods, specs, true); err != nil {
		t.Fatal(err)
	}
	waitPing(t, r1, "192.0.2.2")
	before, _ := inspect(t, r1, "e1")
	if err := labop.ApplyLink(ctx, dir, "", pods, specs, true); err != nil {
		t.Fatalf("ApplyLink again: %v", err)
	}
	if again, _ := inspect(t, r1, "e1"); again.Index != before.Index {
		t.Errorf("ApplyLink with the same specs made e1 anew (ifindex %d, was %d)", again.Index, before.Index)
	}
	nls, err := labop.NodeLinks(ctx, dir)
	if err != nil || len(nls) != 1 || nls[0].State != podlink.StateUp || !nls[0].Added {
		t.Fatalf("NodeLinks: %+v, %v; want one added link, up", nls, err)
	}
	w1, _ := inspect(t, r2, "w1")
	for i, e := range nls[0].Ends {
		want := map[string]string{"e1": before.MAC, "w1": w1.MAC}[e.IfName]
		if nls[0].MAC[i] != want || want == "" {
			t.Errorf("NodeLinks: MAC of %s = %q, want %q", e.IfName, nls[0].MAC[i], want)
		}
	}

	specs[0] = specOf(t, r1Spec("192.0.2.11/24"))
	if err := labop.ApplyLink(ctx, dir, "", pods, specs, true); err != nil {
		t.Fatal(err)
	}
	if s, _ := inspect(t, r1, "e1"); !slices.Contains(s.Addrs, "192.0.2.11/24") {
		t.Errorf("e1 after a changed spec: addresses %v, want 192.0.2.11/24", s.Addrs)
	}
	waitPing(t, r2, "192.0.2.11")
	nowhere := [2]netconf.LinkSpec{specOf(t, `{"name":"n1","peer":{"pod":"r2","name":"w9"}}`), specOf(t, `{"name":"w9","peer":{"pod":"nowhere","name":"n1"}}`)}
	if err := labop.ApplyLink(ctx, dir, "", [2]string{"lab/nowhere", "lab/r2"}, nowhere, true); !errors.Is(err, labop.ErrNotAttached) {
		t.Errorf("ApplyLink for a pod that is not on the node: %v, want ErrNotAttached", err)
	}
	bad := specs
	bad[1].Peer = &netconf.Peer{Pod: "r3", Name: "e1"}
	if err := labop.ApplyLink(ctx, dir, "", pods, bad, true); err == nil {
		t.Error("ApplyLink with a spec whose peer is another pod succeeded")
	}
}

func r1Spec(ip string) string {
	return `{"name":"e1","ips":["` + ip + `"],"peer":{"pod":"r2","name":"w1"}}`
}
