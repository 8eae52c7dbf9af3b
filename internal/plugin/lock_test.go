package plugin_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testutil"
)

// TestHeldNodeLockMeansTryAgain: while another process holds the node
// lock, ADD and DEL give up within store.lockTimeout with code 11 and
// leave nothing; once it is released, they work.
func TestHeldNodeLockMeansTryAgain(t *testing.T) {
	testutil.RequireRoot(t)
	e := newPodEnv(t)
	e.extra = map[string]any{"store": map[string]any{"dir": e.dir, "lockTimeout": "300ms"}}
	annotations := linksJSON(t, podLink("e1", "192.0.2.1/24", "r2", "w1"))
	lock, err := store.LockNode(context.Background(), e.dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	released := false
	defer func() {
		if !released {
			lock.Unlock()
		}
	}()

	e.starts["r1"]++
	e.pods["r1"] = testutil.NewNS(t)
	start := time.Now()
	_, cniErr := run(t, e.call("ADD", "r1", annotations))
	took := time.Since(start)
	if cniErr == nil || cniErr.Code != types.ErrTryAgainLater {
		t.Fatalf("ADD under a held lock: %v, want code 11", cniErr)
	}
	if took < 300*time.Millisecond || took > 5*time.Second {
		t.Fatalf("ADD gave up after %v, want just after the 300ms lockTimeout", took)
	}
	if got := e.links("r1"); len(got) != 0 {
		t.Fatalf("the refused ADD left %v in the pod", got)
	}
	if _, cniErr := run(t, e.call("DEL", "r1", nil)); cniErr == nil || cniErr.Code != types.ErrTryAgainLater {
		t.Fatalf("DEL under a held lock: %v, want code 11", cniErr)
	}

	released = true
	if err := lock.Unlock(); err != nil {
		t.Fatal(err)
	}
	if links, pods, atts := e.records(); links+pods+atts != 0 {
		t.Fatalf("the refused ADD left records: %d links, %d pods, %d attachments", links, pods, atts)
	}
	if path := testutil.ParkingPath(e.dir); path != "" {
		t.Fatalf("the refused ADD made the parking namespace %s", path)
	}
	mustRun(t, e.call("ADD", "r1", annotations))
	if got := e.links("r1"); !slices.Contains(got, "e1") {
		t.Fatalf("ADD after the release: pod holds %v", got)
	}
	e.del("r1")
	e.expectEmpty()
}
