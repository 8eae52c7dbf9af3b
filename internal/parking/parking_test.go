package parking_test

import (
	"context"
	"errors"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/parking"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testutil"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// A store that names a parking netns that is gone (it went with a reboot;
// the store lives on disk) reads as a node with none yet, not as an error
// that every DEL, GC and agent pass would trip over.
func TestRecordedButGoneIsNone(t *testing.T) {
	st, err := store.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if _, err := parking.Open(ctx, st, "/unused", false); !errors.Is(err, parking.ErrNone) {
		t.Fatalf("no parking netns recorded: %v, want ErrNone", err)
	}
	if err := st.PutMeta(ctx, parking.MetaKey, "/var/run/netns/ratchet-park-test-gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := parking.Open(ctx, st, "/unused", false); !errors.Is(err, parking.ErrNone) {
		t.Fatalf("recorded but gone: %v, want ErrNone", err)
	}
}

// The parking namespace's name is derived from the store directory, so
// that one made before a restart is found again; the expected names are
// BLAKE2b-256 digests taken with another implementation (Python's
// hashlib.blake2b(dir, digest_size=32); b2sum -l 256 agrees).
func TestNameIsStable(t *testing.T) {
	for dir, want := range map[string]string{
		"/var/lib/cni/ratchet":    "ratchet-park-6b8f0567",
		"/tmp/cni-tutorial/store": "ratchet-park-6f031440",
	} {
		if got := parking.Name(dir); got != want {
			t.Errorf("Name(%q) = %q, want %q", dir, got, want)
		}
	}
}

// The plugin records the parking namespace's identity with its path, for
// ratchetd to tell the namespace the plugin uses from whatever its own
// view shows at that path; a store from before that records it at the
// next ADD.
func TestOpenRecordsTheIdentity(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	st, err := store.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	park, err := parking.Open(ctx, st, dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		park.Close()
		_ = link.DeleteNamedNetns(parking.Name(dir))
	}()
	id, err := link.IDOf(park)
	if err != nil {
		t.Fatal(err)
	}
	want := parking.FormatID(id)
	if got, err := st.Meta(ctx, parking.IDKey); err != nil || got != want {
		t.Fatalf("recorded identity %q, %v; want %q", got, err, want)
	}
	if err := st.PutMeta(ctx, parking.IDKey, ""); err != nil {
		t.Fatal(err)
	}
	again, err := parking.Open(ctx, st, dir, true)
	if err != nil {
		t.Fatal(err)
	}
	again.Close()
	if got, err := st.Meta(ctx, parking.IDKey); err != nil || got != want {
		t.Fatalf("identity after reopening %q, %v; want %q", got, err, want)
	}
}
