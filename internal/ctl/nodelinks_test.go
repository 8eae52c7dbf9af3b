package ctl_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/labop"
	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/internal/podlink"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testutil"
)

func specOf(t *testing.T, s string) netconf.LinkSpec {
	t.Helper()
	var spec netconf.LinkSpec
	if err := json.Unmarshal([]byte(s), &spec); err != nil {
		t.Fatal(err)
	}
	return spec
}

var (
	r1e1 = labop.End{Pod: "lab/r1", IfName: "e1"}
	r2w1 = labop.End{Pod: "lab/r2", IfName: "w1"}
)

// TestApplyAndRemoveLink: what ratchetd's Kubernetes watcher runs.
// RemoveLink leaves a link toward another peer than the one named alone,
// takes a link the pods declared at their ADD out of both pods, and is
// idempotent; ApplyLink makes it again, leaves it alone when asked
// again with the same specs, and makes it anew when a spec changed;
// NodeLinks reports the ends' MACs as the pods see them.
func TestApplyAndRemoveLink(t *testing.T) {
	dir, r1, r2 := lab(t)
	ctx := context.Background()
	if err := labop.RemoveLink(ctx, dir, "", r1e1, labop.End{Pod: "lab/r3", IfName: "w1"}); err != nil {
		t.Fatal(err)
	}
	inspect(t, r1, "e1") // still there: the declaration named another peer
	if err := labop.RemoveLink(ctx, dir, "", r1e1, r2w1); err != nil {
		t.Fatal(err)
	}
	gone(t, r1, "e1")
	gone(t, r2, "w1")
	if err := labop.RemoveLink(ctx, dir, "", r1e1, r2w1); err != nil {
		t.Fatalf("RemoveLink again: %v", err)
	}
	if nls, err := labop.NodeLinks(ctx, dir); err != nil || len(nls) != 0 {
		t.Fatalf("NodeLinks after RemoveLink: %+v, %v", nls, err)
	}

	pods := [2]string{"lab/r1", "lab/r2"}
	specs := [2]netconf.LinkSpec{specOf(t, r1Spec("192.0.2.1/24")), specOf(t, `{"name":"w1","ips":["192.0.2.2/24"],"peer":{"pod":"r1","name":"e1"}}`)}
	if err := labop.ApplyLink(ctx, dir, "", pods, specs, true, labop.Limits{}); err != nil {
		t.Fatal(err)
	}
	waitPing(t, r1, "192.0.2.2")
	before, _ := inspect(t, r1, "e1")
	if err := labop.ApplyLink(ctx, dir, "", pods, specs, true, labop.Limits{}); err != nil {
		t.Fatalf("ApplyLink again: %v", err)
	}
	if again, _ := inspect(t, r1, "e1"); again.Index != before.Index {
		t.Errorf("ApplyLink with the same specs made e1 anew (ifindex %d, was %d)", again.Index, before.Index)
	}
	nls, err := labop.NodeLinks(ctx, dir)
	if err != nil || len(nls) != 1 || nls[0].State != podlink.StateUp || nls[0].Added {
		t.Fatalf("NodeLinks: %+v, %v; want one declared link (not the administrator's), up", nls, err)
	}
	w1, _ := inspect(t, r2, "w1")
	for i, e := range nls[0].Ends {
		want := map[string]string{"e1": before.MAC, "w1": w1.MAC}[e.IfName]
		if nls[0].MAC[i] != want || want == "" {
			t.Errorf("NodeLinks: MAC of %s = %q, want %q", e.IfName, nls[0].MAC[i], want)
		}
	}

	specs[0] = specOf(t, r1Spec("192.0.2.11/24"))
	if err := labop.ApplyLink(ctx, dir, "", pods, specs, true, labop.Limits{}); err != nil {
		t.Fatal(err)
	}
	if s, _ := inspect(t, r1, "e1"); !slices.Contains(s.Addrs, "192.0.2.11/24") {
		t.Errorf("e1 after a changed spec: addresses %v, want 192.0.2.11/24", s.Addrs)
	}
	waitPing(t, r2, "192.0.2.11")
	nowhere := [2]netconf.LinkSpec{specOf(t, `{"name":"n1","peer":{"pod":"r2","name":"w9"}}`), specOf(t, `{"name":"w9","peer":{"pod":"nowhere","name":"n1"}}`)}
	if err := labop.ApplyLink(ctx, dir, "", [2]string{"lab/nowhere", "lab/r2"}, nowhere, true, labop.Limits{}); !errors.Is(err, labop.ErrNotAttached) {
		t.Errorf("ApplyLink for a pod that is not on the node: %v, want ErrNotAttached", err)
	}
	bad := specs
	bad[1].Peer = &netconf.Peer{Pod: "r3", Name: "e1"}
	if err := labop.ApplyLink(ctx, dir, "", pods, bad, true, labop.Limits{}); err == nil {
		t.Error("ApplyLink with a spec whose peer is another pod succeeded")
	}
}

func r1Spec(ip string) string {
	return `{"name":"e1","ips":["` + ip + `"],"peer":{"pod":"r2","name":"w1"}}`
}

// TestAppliedLinkLastsWhileDeclared: a link ApplyLink made from the pods'
// annotations is the annotations', not the administrator's: a pod that
// comes back (DEL, then ADD) with an annotation without it does not get
// it back, while the peer's end waits for it, as for any declared link.
func TestAppliedLinkLastsWhileDeclared(t *testing.T) {
	dir, r1, r2 := lab(t)
	ctx := context.Background()
	pods := [2]string{"lab/r1", "lab/r2"}
	specs := [2]netconf.LinkSpec{specOf(t, `{"name":"e3","ips":["198.51.100.1/30"],"peer":{"pod":"r2","name":"w3"}}`),
		specOf(t, `{"name":"w3","ips":["198.51.100.2/30"],"peer":{"pod":"r1","name":"e3"}}`)}
	if err := labop.ApplyLink(ctx, dir, "", pods, specs, true, labop.Limits{}); err != nil {
		t.Fatal(err)
	}
	waitPing(t, r1, "198.51.100.2")
	mustCNI(t, "DEL", dir, "r1", r1, "")
	gone(t, r1, "e3")
	mustCNI(t, "ADD", dir, "r1", r1, r1Links) // the template: e1 only
	gone(t, r1, "e3")
	testutil.MustPing(t, r1, "192.0.2.2")
	nls, err := labop.NodeLinks(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, nl := range nls {
		if mine, _, ok := (&store.LinkRecord{Ends: nl.Ends}).End("lab/r1", "e3"); ok && (mine.Declared || mine.Attachment != nil) {
			t.Errorf("link %s: r1's end e3 is %+v after an ADD whose annotation lacks it", nl.ID, mine)
		}
	}
	inspect(t, r2, "w3") // r2 still declares it: its end waits
}

// TestRemoveLinkSparesAdminLink: an annotation edit removes only what
// annotations made: the administrator's link on the interface, even
// toward the very peer the annotation names, stays; ApplyLink of that
// very link leaves it the administrator's.
func TestRemoveLinkSparesAdminLink(t *testing.T) {
	dir, r1, r2 := lab(t)
	ctx := context.Background()
	mustCtl(t, nil, "link", "add", "--store", dir, "--ips", "198.51.100.1/30,198.51.100.2/30", "lab/r1:e2", "lab/r2:w2")
	e2, w2 := labop.End{Pod: "lab/r1", IfName: "e2"}, labop.End{Pod: "lab/r2", IfName: "w2"}
	if err := labop.RemoveLink(ctx, dir, "", e2, labop.End{Pod: "other/c", IfName: "x"}); err != nil {
		t.Errorf("RemoveLink toward another peer: %v, want nil (nothing of it)", err)
	}
	if err := labop.RemoveLink(ctx, dir, "", e2, w2); !errors.Is(err, labop.ErrNotAnnotated) {
		t.Errorf("RemoveLink of the administrator's link: %v, want ErrNotAnnotated", err)
	}
	before, _ := inspect(t, r1, "e2")
	inspect(t, r2, "w2")
	waitPing(t, r1, "198.51.100.2")
	// Both annotations declaring that very link do not take it over.
	specs := [2]netconf.LinkSpec{specOf(t, `{"name":"e2","ips":["203.0.113.1/30"],"peer":{"pod":"r2","name":"w2"}}`),
		specOf(t, `{"name":"w2","ips":["203.0.113.2/30"],"peer":{"pod":"r1","name":"e2"}}`)}
	if err := labop.ApplyLink(ctx, dir, "", [2]string{"lab/r1", "lab/r2"}, specs, true, labop.Limits{}); err != nil {
		t.Fatal(err)
	}
	if after, _ := inspect(t, r1, "e2"); after.Index != before.Index || slices.Contains(after.Addrs, "203.0.113.1/30") {
		t.Errorf("ApplyLink over the administrator's link changed e2: %+v, was %+v", after, before)
	}
	if err := labop.RemoveLink(ctx, dir, "", e2, w2); !errors.Is(err, labop.ErrNotAnnotated) {
		t.Errorf("RemoveLink after ApplyLink: %v, want ErrNotAnnotated (still the administrator's)", err)
	}
}

// TestApplyLinkLimits: ApplyLink enforces the configured maxLinksPerPod,
// not the default.
func TestApplyLinkLimits(t *testing.T) {
	dir, r1, _ := lab(t)
	ctx := context.Background()
	pods := [2]string{"lab/r1", "lab/r2"}
	specs := [2]netconf.LinkSpec{specOf(t, `{"name":"e3","peer":{"pod":"r2","name":"w3"}}`), specOf(t, `{"name":"w3","peer":{"pod":"r1","name":"e3"}}`)}
	err := labop.ApplyLink(ctx, dir, "", pods, specs, true, labop.Limits{MaxLinksPerPod: 1})
	if err == nil || !strings.Contains(err.Error(), "maxLinksPerPod (1)") {
		t.Fatalf("ApplyLink past maxLinksPerPod 1: %v", err)
	}
	gone(t, r1, "e3")
	if err := labop.ApplyLink(ctx, dir, "", pods, specs, true, labop.Limits{MaxLinksPerPod: 2}); err != nil {
		t.Fatalf("ApplyLink within maxLinksPerPod 2: %v", err)
	}
	inspect(t, r1, "e3")
}
