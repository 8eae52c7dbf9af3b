package etcdstore_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/store/etcdstore"
	"github.com/ratchet-cni/ratchet/internal/testutil/etcdtest"
)

// TestAddedLink: an added link's record round-trips, a write based on a
// stale read is refused, the watch names the link, a record whose ends
// are not the link id's is skipped and logged, and the record goes with
// the link's VNI.
func TestAddedLink(t *testing.T) {
	var logged bytes.Buffer
	e := open(t, etcdstore.Config{Endpoints: etcdtest.StartEmbeddedEtcd(t), Timeout: 5 * time.Second,
		Log: slog.New(slog.NewTextHandler(&logged, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watch := e.Watch(ctx)
	expect(t, watch, store.Change{Resync: true})

	a, b := end("ns/a", "e1", "node1"), end("ns/b", "w1", "node2")
	a.PeerPod, a.PeerIfName, b.PeerPod, b.PeerIfName = "ns/b", "w1", "ns/a", "e1"
	id := a.LinkID()
	if got, rev, err := e.AddedLink(ctx, id); got != nil || rev != 0 || err != nil {
		t.Fatalf("added record of a new link: %+v rev %d, %v; want none", got, rev, err)
	}
	want := &store.AddedLink{Ends: [2]store.AddedEnd{
		{Pod: "ns/a", IfName: "e1", Spec: []byte(`{"name":"e1"}`)},
		{Pod: "ns/b", IfName: "w1", Spec: []byte(`{"name":"w1"}`)},
	}}
	swapped := &store.AddedLink{Ends: [2]store.AddedEnd{want.Ends[1], want.Ends[0]}}
	if err := e.PutAddedLink(ctx, id, swapped, 0); err == nil {
		t.Fatal("a record whose ends are not in the link id's order was written")
	}
	if err := e.PutAddedLink(ctx, id, want, 0); err != nil {
		t.Fatal(err)
	}
	expect(t, watch, store.Change{Kind: "added", LinkID: id})
	got, rev, err := e.AddedLink(ctx, id)
	if err != nil || got == nil || got.Ends[1].Pod != "ns/b" || string(got.Ends[1].Spec) != `{"name":"w1"}` || rev == 0 {
		t.Fatalf("added record %+v rev %d, %v; want %+v", got, rev, err, want)
	}
	if err := e.PutAddedLink(ctx, id, &store.AddedLink{Ends: want.Ends, Failed: "x"}, 0); !errors.Is(err, store.ErrAddedChanged) {
		t.Fatalf("a write from a stale read: %v, want ErrAddedChanged", err)
	}
	if all, err := e.AddedLinks(ctx); err != nil || len(all) != 1 || all[id] == nil {
		t.Fatalf("all added links %v, %v", all, err)
	}
	if err := e.DeleteAddedLink(ctx, id); err != nil {
		t.Fatal(err)
	}
	expect(t, watch, store.Change{Kind: "added", LinkID: id, Deleted: true})
	if err := e.DeleteAddedLink(ctx, id); err != nil {
		t.Fatalf("deleting a deleted record: %v", err)
	}

	// A record that ratchetctl cannot have written is skipped, and logged.
	key := e.Prefix() + "/links/" + url.PathEscape(id) + "/added"
	for _, bad := range []string{`{not json`, `{"ends":[{"pod":"ns/x","ifName":"e1","spec":{}},{"pod":"ns/b","ifName":"w1","spec":{}}]}`} {
		if _, err := e.Client().Put(ctx, key, bad); err != nil {
			t.Fatal(err)
		}
		next(t, watch)
		if got, rev, err := e.AddedLink(ctx, id); got != nil || rev == 0 || err != nil {
			t.Fatalf("bad record %s: %+v rev %d, %v; want skipped, with its revision", bad, got, rev, err)
		}
		if all, err := e.AddedLinks(ctx); err != nil || len(all) != 0 {
			t.Fatalf("bad record %s listed: %v, %v", bad, all, err)
		}
	}
	if !strings.Contains(logged.String(), "skipping a bad registry record") {
		t.Fatalf("bad record not logged: %s", logged.String())
	}

	// The record goes with the link once neither end is registered.
	if err := e.RegisterEnds(ctx, []*store.EndRecord{a, b}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.AllocateVNI(ctx, id, 10, 20); err != nil {
		t.Fatal(err)
	}
	_, rev, _ = e.AddedLink(ctx, id)
	if err := e.PutAddedLink(ctx, id, want, rev); err != nil {
		t.Fatal(err)
	}
	for _, x := range []*store.EndRecord{a, b} {
		if err := e.UnregisterEnds(ctx, x.Node, x.Attachment, x.Pod, []string{x.IfName}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.ReleaseVNI(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got, rev, err := e.AddedLink(ctx, id); got != nil || rev != 0 || err != nil {
		t.Fatalf("added record after the link's release: %+v rev %d, %v; want none", got, rev, err)
	}
}
