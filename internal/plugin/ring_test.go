package plugin_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/containernetworking/plugins/pkg/testutils"

	"github.com/ratchet-cni/ratchet/internal/testutil"
)

// TestRingConcurrent: a ring of 32 pods (each linked to both neighbours)
// whose ADDs run 8 at a time in random order, then their DELs the same
// way, three rounds. Every link passes traffic when all are up, and nothing
// is left after each round.
func TestRingConcurrent(t *testing.T) {
	const pods, inFlight, rounds = 32, 8, 3
	e := newPodEnv(t)
	rng := testutil.Rand(t)
	name := func(i int) string { return fmt.Sprintf("ring%02d", (i+pods)%pods) }
	// Link i joins pod i's "e" to pod i+1's "w" in 192.0.2.4i/30.
	ann := map[string]map[string]string{}
	for i := 0; i < pods; i++ {
		prev := (i + pods - 1) % pods
		ann[name(i)] = linksJSON(t,
			podLink("e", fmt.Sprintf("192.0.2.%d/30", 4*i+1), name(i+1), "w"),
			podLink("w", fmt.Sprintf("192.0.2.%d/30", 4*prev+2), name(prev), "e"))
	}
	parallel := func(f func(i int)) {
		order := rng.Perm(pods)
		sem := make(chan struct{}, inFlight)
		var wg sync.WaitGroup
		for _, i := range order {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				f(i)
			}()
		}
		wg.Wait()
	}
	for round := 1; round <= rounds; round++ {
		for i := 0; i < pods; i++ { // namespaces first: testing.T is not for goroutines
			e.starts[name(i)]++
			e.pods[name(i)] = testutil.NewNS(t)
		}
		errs := make(chan error, pods)
		parallel(func(i int) {
			if _, cniErr := run(t, e.call("ADD", name(i), ann[name(i)])); cniErr != nil {
				errs <- fmt.Errorf("ADD %s: %v", name(i), cniErr)
			}
		})
		parallel(func(i int) {
			if err := testutil.Ping(e.pods[name(i)], fmt.Sprintf("192.0.2.%d", 4*i+2)); err != nil {
				errs <- fmt.Errorf("round %d, link %s-%s: %v", round, name(i), name(i+1), err)
			}
		})
		parallel(func(i int) {
			if _, cniErr := run(t, e.call("DEL", name(i), nil)); cniErr != nil {
				errs <- fmt.Errorf("DEL %s: %v", name(i), cniErr)
			}
		})
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if t.Failed() {
			t.FailNow()
		}
		e.expectEmpty()
		for i := 0; i < pods; i++ {
			n := e.pods[name(i)]
			n.Close()
			_ = testutils.UnmountNS(n)
			delete(e.pods, name(i))
		}
	}
}
