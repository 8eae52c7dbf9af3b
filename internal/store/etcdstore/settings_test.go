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

	"github.com/ratchet-cni/ratchet/internal/linkparam"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/store/etcdstore"
	"github.com/ratchet-cni/ratchet/internal/testutil/etcdtest"
)

// TestLinkSettings: a cross-node link's settings round-trip, a write based
// on a stale read is refused, the watch names the link, a bad record is
// skipped and logged, and the settings go with the link's VNI.
func TestLinkSettings(t *testing.T) {
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
	if s, rev, err := e.LinkSettings(ctx, id); s != nil || rev != 0 || err != nil {
		t.Fatalf("settings of a new link: %+v rev %d, %v; want none", s, rev, err)
	}
	want := &store.Settings{Pulled: true, Toward: [2]*linkparam.Impairment{nil, {Rate: 8_000_000}}}
	if err := e.PutLinkSettings(ctx, id, want, 0); err != nil {
		t.Fatal(err)
	}
	expect(t, watch, store.Change{Kind: "settings", LinkID: id})
	got, rev, err := e.LinkSettings(ctx, id)
	if err != nil || got == nil || !got.Pulled || got.Toward[0] != nil || got.Toward[1] == nil || *got.Toward[1] != *want.Toward[1] || rev == 0 {
		t.Fatalf("settings %+v rev %d, %v; want %+v", got, rev, err, want)
	}
	// A change based on what was there before this write is refused.
	if err := e.PutLinkSettings(ctx, id, &store.Settings{}, 0); !errors.Is(err, store.ErrSettingsChanged) {
		t.Fatalf("a write from a stale read: %v, want ErrSettingsChanged", err)
	}
	all, err := e.AllLinkSettings(ctx)
	if err != nil || len(all) != 1 || all[id] == nil || !all[id].Pulled {
		t.Fatalf("all settings %v, %v", all, err)
	}
	// Nothing asked for: the key goes.
	if err := e.PutLinkSettings(ctx, id, &store.Settings{}, rev); err != nil {
		t.Fatal(err)
	}
	expect(t, watch, store.Change{Kind: "settings", LinkID: id, Deleted: true})
	if s, rev, err := e.LinkSettings(ctx, id); s != nil || rev != 0 || err != nil {
		t.Fatalf("settings after a reset: %+v rev %d, %v; want none", s, rev, err)
	}

	// A record ratchetctl cannot have written is skipped, and logged.
	key := e.Prefix() + "/links/" + url.PathEscape(id) + "/settings"
	for _, bad := range []string{`{not json`, `{"toward":[{"loss":250}]}`} {
		if _, err := e.Client().Put(ctx, key, bad); err != nil {
			t.Fatal(err)
		}
		next(t, watch)
		s, rev, err := e.LinkSettings(ctx, id)
		if s != nil || rev == 0 || err != nil {
			t.Fatalf("bad record %s: %+v rev %d, %v; want skipped, with its revision", bad, s, rev, err)
		}
		if all, err := e.AllLinkSettings(ctx); err != nil || len(all) != 0 {
			t.Fatalf("bad record %s listed: %v, %v", bad, all, err)
		}
	}
	if !strings.Contains(logged.String(), "skipping a bad registry record") {
		t.Fatalf("bad settings not logged: %s", logged.String())
	}

	// The settings go with the link: once neither end is registered, its
	// VNI is released and its settings with it.
	if err := e.RegisterEnds(ctx, []*store.EndRecord{a, b}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.AllocateVNI(ctx, id, 10, 20); err != nil {
		t.Fatal(err)
	}
	_, rev, _ = e.LinkSettings(ctx, id)
	if err := e.PutLinkSettings(ctx, id, want, rev); err != nil {
		t.Fatal(err)
	}
	if err := e.UnregisterEnds(ctx, "node1", a.Attachment, a.Pod, []string{a.IfName}); err != nil {
		t.Fatal(err)
	}
	if err := e.UnregisterEnds(ctx, "node2", b.Attachment, b.Pod, []string{b.IfName}); err != nil {
		t.Fatal(err)
	}
	if err := e.ReleaseVNI(ctx, id); err != nil {
		t.Fatal(err)
	}
	if s, rev, err := e.LinkSettings(ctx, id); s != nil || rev != 0 || err != nil {
		t.Fatalf("settings after the link's release: %+v rev %d, %v; want none", s, rev, err)
	}
}
