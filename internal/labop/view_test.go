package labop

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/ratchet-cni/ratchet/internal/parking"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testutil"
)

// TestViewWaitsBoundedForTheLock: with the node lock held elsewhere (an
// ADD that hangs), View gives up after its wait with a StoreError and
// never calls fn.
func TestViewWaitsBoundedForTheLock(t *testing.T) {
	dir := t.TempDir()
	lock, err := store.LockNode(context.Background(), dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock()
	start := time.Now()
	called := false
	err = View(context.Background(), dir, 100*time.Millisecond, true, func(*Lab) error {
		called = true
		return nil
	})
	took := time.Since(start)
	if _, ok := errors.AsType[*StoreError](err); !ok || called {
		t.Fatalf("View with the lock held: %v (fn called: %v), want a StoreError and no call", err, called)
	}
	if took > 2*time.Second {
		t.Fatalf("View with the lock held took %v, want about its 100 ms wait", took)
	}
}

// TestViewReadsTheKernelWithoutTheLock: by the time fn runs, the parking
// namespace has been read (the link's counters are there) and the node
// lock is free: another locker (an ADD) gets it at once while fn still
// holds the lab, and so while the kernel was read.
func TestViewReadsTheKernelWithoutTheLock(t *testing.T) {
	park := testutil.NewNS(t)
	// A veth pair stands for the parked end and its stitch.
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "rp-a"}, PeerName: "rp-x"}
	h := testutil.Handle(t, park)
	if err := h.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	parked, err := h.LinkByName("rp-a")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st, err := store.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rec := &store.LinkRecord{ID: "l1", Ends: [2]store.LinkEnd{
		{Pod: "lab/a", IfName: "e1", Attachment: &store.AttachmentKey{Network: "n", ContainerID: "ca", IfName: "eth0"},
			Parked: "rp-a", ParkedIndex: parked.Attrs().Index},
		{Pod: "lab/b", IfName: "e1"},
	}}
	if err := errors.Join(st.PutMeta(ctx, parking.MetaKey, park.Path()), st.PutLink(ctx, rec)); err != nil {
		st.Close()
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	err = View(ctx, dir, time.Second, true, func(lab *Lab) error {
		if lab.Parking == nil || len(lab.Links) != 1 || lab.Links[0].Stats == nil || lab.Links[0].Stats.CarrierChanges[0] == nil {
			t.Errorf("lab = %+v, want the link with the parked end's counters", lab)
		}
		// Another goroutine, as an ADD would: it must not wait for fn.
		got := make(chan error, 1)
		go func() {
			l, err := store.LockNode(ctx, dir, 200*time.Millisecond)
			if err == nil {
				err = l.Unlock()
			}
			got <- err
		}()
		if err := <-got; err != nil {
			t.Errorf("the node lock while View's fn runs: %v, want it free", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
