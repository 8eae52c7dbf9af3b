package podlink_test

import (
	"context"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"

	"github.com/ratchet-cni/ratchet/internal/podlink"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testutil"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

func vethIn(podNS ns.NetNS, name string) podlink.VethFunc {
	return func(int) (*link.Veth, error) {
		return &link.Veth{A: link.Endpoint{NS: podNS, Name: name}, B: link.Endpoint{Name: link.RandomName("rp")},
			Marker: link.Marker{Alias: "ratchet:test:" + name}}, nil
	}
}

// parkedUp reports whether the parked netdev at index is administratively up.
func parkedUp(t *testing.T, park ns.NetNS, index int) bool {
	t.Helper()
	l, err := testutil.Handle(t, park).LinkByIndex(index)
	if err != nil {
		t.Fatalf("parked ifindex %d: %v", index, err)
	}
	return l.Attrs().RawFlags&unix.IFF_UP != 0
}

// TestExecutorTakesADDAndDEL drives a link through pending, up, a failed
// ADD undone, and parked, in real namespaces, taking podlink's decisions
// with one Executor, and checks the kernel and the state after each.
func TestExecutorTakesADDAndDEL(t *testing.T) {
	park, podA, podB := testutil.NewNS(t), testutil.NewNS(t), testutil.NewNS(t)
	ctx := context.Background()
	keyA := store.AttachmentKey{Network: "lab", ContainerID: "a", IfName: "eth0"}
	keyB := store.AttachmentKey{Network: "lab", ContainerID: "b", IfName: "eth0"}
	rec := &store.LinkRecord{ID: "t", Ends: [2]store.LinkEnd{{Pod: "a", IfName: "e1", Declared: true}, {Pod: "b", IfName: "w1"}}}

	// a's ADD: pending.
	undo := podlink.NewUndo(nil)
	x, err := podlink.NewExecutor(nil, park, undo)
	if err != nil {
		t.Fatal(err)
	}
	d := podlink.OnAdd(rec, 0, keyA, x.ObserveParked(rec))
	if err := x.Apply(ctx, rec, &d, vethIn(podA, "e1")); err != nil {
		t.Fatal(err)
	}
	if err := x.PlugIn(); err != nil {
		t.Fatal(err)
	}
	undo.Finish(true)
	*rec = d.Next
	if rec.Ends[0].ParkedIndex == 0 || parkedUp(t, park, rec.Ends[0].ParkedIndex) {
		t.Fatalf("a's parked end: %+v, want made and down", rec.Ends[0])
	}
	view, err := podlink.NewExecutor(nil, park, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer view.Close()
	if got := podlink.StateOf(rec, view.Observe(rec)); got != podlink.StatePending {
		t.Fatalf("after a's ADD: %q, want pending", got)
	}

	// b's ADD fails after it is stitched and plugged in: undone, a's cable
	// is unplugged again and b's veth is gone. The undo runs its steps
	// before the executor's handle, which it owns, is closed.
	rec.Ends[1].Declared = true
	undo = podlink.NewUndo(nil)
	if x, err = podlink.NewExecutor(nil, park, undo); err != nil {
		t.Fatal(err)
	}
	failed := podlink.OnAdd(rec, 1, keyB, x.ObserveParked(rec))
	if err := x.Apply(ctx, rec, &failed, vethIn(podB, "w1")); err != nil {
		t.Fatal(err)
	}
	if err := x.PlugIn(); err != nil {
		t.Fatal(err)
	}
	if !parkedUp(t, park, rec.Ends[0].ParkedIndex) {
		t.Fatal("b's ADD did not plug a's cable in")
	}
	undo.Finish(false)
	if parkedUp(t, park, rec.Ends[0].ParkedIndex) {
		t.Fatal("undone, b's ADD left a's cable plugged in")
	}
	if got := testutil.Links(t, podB); len(got) != 0 {
		t.Fatalf("undone, b's ADD left %v in b", got)
	}

	// b's ADD again: up.
	undo = podlink.NewUndo(nil)
	if x, err = podlink.NewExecutor(nil, park, undo); err != nil {
		t.Fatal(err)
	}
	d = podlink.OnAdd(rec, 1, keyB, x.ObserveParked(rec))
	if err := x.Apply(ctx, rec, &d, vethIn(podB, "w1")); err != nil {
		t.Fatal(err)
	}
	if err := x.PlugIn(); err != nil {
		t.Fatal(err)
	}
	undo.Finish(true)
	*rec = d.Next
	if got := podlink.StateOf(rec, view.Observe(rec)); got != podlink.StateUp || d.State != podlink.StateUp {
		t.Fatalf("after b's ADD: %q (decided %q), want up", got, d.State)
	}
	check := podlink.OnCheck(rec, 0, view.ObserveParked(rec))
	if err := view.Apply(ctx, rec, &check, vethIn(podA, "e1")); err != nil {
		t.Fatalf("CHECK of the up link: %v", err)
	}

	// b goes (its netdevs with it), then its DEL: a waits, parked.
	if n, err := link.RemoveOwned(nil, podB, 0, "ratchet:test:"); err != nil || n != 1 {
		t.Fatalf("remove b's interface: %d removed, %v", n, err)
	}
	d = podlink.OnRelease(rec, "b", keyB, true)
	if err := view.Apply(ctx, rec, &d, nil); err != nil {
		t.Fatal(err)
	}
	*rec = d.Next
	if parkedUp(t, park, rec.Ends[0].ParkedIndex) {
		t.Fatal("b's DEL left a's cable plugged in")
	}
	if got := podlink.StateOf(rec, view.Observe(rec)); got != podlink.StateParked || d.State != podlink.StateParked {
		t.Fatalf("after b's DEL: %q (decided %q), want parked", got, d.State)
	}
	check = podlink.OnCheck(rec, 0, view.ObserveParked(rec))
	if err := view.Apply(ctx, rec, &check, vethIn(podA, "e1")); err != nil {
		t.Fatalf("CHECK of the parked link: %v", err)
	}
}
