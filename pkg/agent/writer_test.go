package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/pkg/store"
)

// Writes go through in the order they came, a write etcd cannot take now
// is tried again in place (the ones behind it wait), its waiter hears of
// the failure, and a write etcd refuses for good is dropped.
func TestWriterKeepsOrderAndRetries(t *testing.T) {
	w := newWriter(time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var refused []error
	var mu sync.Mutex
	go w.run(ctx, func(err error) { mu.Lock(); refused = append(refused, err); mu.Unlock() })

	var order []string
	record := func(name string) func(context.Context) error {
		return func(context.Context) error { order = append(order, name); return nil }
	}
	failures := 2
	flaky := func(context.Context) error {
		if failures > 0 {
			failures--
			order = append(order, "flaky (unavailable)")
			return fmt.Errorf("%w: leader election", store.ErrUnavailable)
		}
		order = append(order, "flaky")
		return nil
	}
	bad := errors.New("value too large")
	first := w.enqueue(record("first"))
	retried := w.enqueue(flaky)
	w.enqueue(func(context.Context) error { return bad })
	last := w.enqueue(record("last"))

	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-retried; !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("the waiter of a write etcd could not take got %v, want ErrUnavailable", err)
	}
	if err := <-last; err != nil {
		t.Fatal(err)
	}
	want := []string{"first", "flaky (unavailable)", "flaky (unavailable)", "flaky", "last"}
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Fatalf("order %q, want %q", order, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(refused) != 1 || !errors.Is(refused[0], bad) {
		t.Fatalf("refused writes %v, want the one etcd refused", refused)
	}
	if n := w.pending(); n != 0 {
		t.Fatalf("%d writes still pending", n)
	}
}
