package plugin_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

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

// TestNoLinkPodPassesThrough: a pod that declares nothing (the installer
// chains ratchet into every pod's network) passes prevResult through at
// once, without the node lock or the store: its ADD and DEL complete while
// another process holds the lock, and nothing is recorded. A DEL that does
// not carry the pod's annotations cannot know that, and still asks the
// store (code 11 under the held lock).
func TestNoLinkPodPassesThrough(t *testing.T) {
	testutil.RequireRoot(t)
	e := newPodEnv(t)
	e.extra = map[string]any{
		"store": map[string]any{"dir": e.dir, "lockTimeout": "5s"},
		"prevResult": map[string]any{"cniVersion": "1.0.0",
			"interfaces": []any{map[string]any{"name": "eth0", "sandbox": "/x"}},
			"ips":        []any{map[string]any{"interface": 0, "address": "198.51.100.5/24"}}},
	}
	lock, err := store.LockNode(context.Background(), e.dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock()
	e.starts["r1"]++
	e.pods["r1"] = testutil.NewNS(t)
	none := map[string]string{"kubernetes.io/config.source": "api"}
	start := time.Now()
	out := mustRun(t, e.call("ADD", "r1", none))
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("the no-link ADD took %v under a held lock: it waited for it", took)
	}
	r, err := current.NewResultFromResult(mustResult(t, out))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Interfaces) != 1 || r.Interfaces[0].Name != "eth0" || len(r.IPs) != 1 || r.IPs[0].Address.String() != "198.51.100.5/24" {
		t.Fatalf("result %+v: want prevResult passed through", r)
	}
	start = time.Now()
	mustRun(t, e.call("DEL", "r1", none))
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("the no-link DEL took %v under a held lock", took)
	}
	e.extra["store"] = map[string]any{"dir": e.dir, "lockTimeout": "200ms"}
	if _, cniErr := run(t, e.call("DEL", "r1", nil)); cniErr == nil || cniErr.Code != types.ErrTryAgainLater {
		t.Fatalf("a DEL without annotations under a held lock: %v, want code 11 (it must ask the store)", cniErr)
	}
	if err := lock.Unlock(); err != nil {
		t.Fatal(err)
	}
	if links, pods, atts := e.records(); links+pods+atts != 0 {
		t.Fatalf("the no-link ADD recorded %d links, %d pods, %d attachments", links, pods, atts)
	}
	mustRun(t, e.call("DEL", "r1", nil))
}
