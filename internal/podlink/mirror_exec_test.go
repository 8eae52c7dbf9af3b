package podlink_test

import (
	"context"
	"errors"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/podlink"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testutil"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// TestExecutorMirrorUndo: the executor mirrors a link's present ends to
// the collector and CHECK's step verifies it; an undone mirror change
// gives each end the mirror it had before (another collector's, or none).
func TestExecutorMirrorUndo(t *testing.T) {
	park, podA, podB := testutil.NewNS(t), testutil.NewNS(t), testutil.NewNS(t)
	ctx := context.Background()
	x, err := podlink.NewExecutor(nil, park, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	rec := &store.LinkRecord{ID: "t", Ends: [2]store.LinkEnd{{Pod: "a", IfName: "e1", Declared: true}, {Pod: "b", IfName: "w1", Declared: true}}}
	pods := []ns.NetNS{podA, podB}
	for i, key := range []store.AttachmentKey{{Network: "lab", ContainerID: "a", IfName: "eth0"}, {Network: "lab", ContainerID: "b", IfName: "eth0"}} {
		d := podlink.OnAdd(rec, i, key, x.ObserveParked(rec))
		if err := x.Apply(ctx, rec, &d, vethIn(pods[i], rec.Ends[i].IfName)); err != nil {
			t.Fatal(err)
		}
		*rec = d.Next
	}
	collector := func(name string) int {
		v := &link.Veth{A: link.Endpoint{NS: testutil.NewNS(t), Name: "m1"}, B: link.Endpoint{NS: park, Name: name}, Marker: link.Marker{Alias: "ratchet:test:" + name}}
		if err := v.Create(ctx, nil); err != nil {
			t.Fatal(err)
		}
		return v.B.Index
	}
	pc, pd := collector("pc"), collector("pd")
	p, err := link.OpenParking(nil, park)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	mirrors := func() [2]int {
		var m [2]int
		for i, e := range rec.Ends {
			if m[i], err = p.Mirrored(e.ParkedIndex); err != nil {
				t.Fatal(err)
			}
		}
		return m
	}

	// Mirror to c, done.
	obs := x.ObserveParked(rec)
	obs.Collector = pc
	d := podlink.OnMirror(rec, &store.MirrorTarget{Pod: "c", IfName: "m1"}, obs)
	if err := x.Apply(ctx, rec, &d, nil); err != nil {
		t.Fatal(err)
	}
	*rec = d.Next
	if got := mirrors(); got != [2]int{pc, pc} {
		t.Fatalf("mirrored to %v, want both to %d", got, pc)
	}
	// CHECK's mirror step (its veth checks are the plugin's tests').
	verify := func(collector int) error {
		obs.Collector = collector
		check := podlink.OnCheck(rec, 0, obs)
		if !check.Has(podlink.VerifyMirror, 0) {
			t.Fatalf("CHECK does not verify the mirror: %v", check.Steps)
		}
		check.Steps = []podlink.Step{{Action: podlink.VerifyMirror, End: 0}}
		return x.Apply(ctx, rec, &check, nil)
	}
	if err := verify(pc); err != nil {
		t.Fatalf("CHECK of a mirrored end: %v", err)
	}
	var mm *podlink.MismatchError
	if err := verify(pd); !errors.As(err, &mm) {
		t.Fatalf("CHECK against another collector: %v, want a mismatch", err)
	}
	obs.Collector = pd

	// Move it to d, undone: back to c.
	undo := podlink.NewUndo(nil)
	moved := podlink.OnMirror(rec, &store.MirrorTarget{Pod: "d", IfName: "m1"}, obs)
	if err := x.WithUndo(undo).Apply(ctx, rec, &moved, nil); err != nil {
		t.Fatal(err)
	}
	if got := mirrors(); got != [2]int{pd, pd} {
		t.Fatalf("moved: mirrored to %v, want both to %d", got, pd)
	}
	undo.Finish(false)
	if got := mirrors(); got != [2]int{pc, pc} {
		t.Fatalf("move undone: mirrored to %v, want both back to %d", got, pc)
	}

	// Unmirror, undone: back to c; done: none.
	undo = podlink.NewUndo(nil)
	off := podlink.OnMirror(rec, nil, obs)
	if err := x.WithUndo(undo).Apply(ctx, rec, &off, nil); err != nil {
		t.Fatal(err)
	}
	if got := mirrors(); got != [2]int{} {
		t.Fatalf("unmirrored: %v, want none", got)
	}
	undo.Finish(false)
	if got := mirrors(); got != [2]int{pc, pc} {
		t.Fatalf("unmirror undone: %v, want both back to %d", got, pc)
	}
	if err := x.Apply(ctx, rec, &off, nil); err != nil {
		t.Fatal(err)
	}
	if got := mirrors(); got != [2]int{} {
		t.Fatalf("unmirrored: %v, want none", got)
	}
}
