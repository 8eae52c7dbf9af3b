package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/store"
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
	first := w.enqueue(record("first")).done
	retried := w.enqueue(flaky).done
	w.enqueue(func(context.Context) error { return bad })
	last := w.enqueue(record("last")).done

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

// A write abandoned by whoever queued it (an ADD that gave up) is not made
// once etcd is back.
func TestWriterDropsAbandonedWrites(t *testing.T) {
	w := newWriter(time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.run(ctx, func(error) {})
	var mu sync.Mutex
	made := false
	down := true
	wr := w.enqueue(func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return fmt.Errorf("%w: etcd down", store.ErrUnavailable)
		}
		made = true
		return nil
	})
	if err := <-wr.done; !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("first outcome %v, want unavailable", err)
	}
	wr.abandoned.Store(true)
	mu.Lock()
	down = false
	mu.Unlock()
	if err := <-w.enqueue(func(context.Context) error { return nil }).done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if made {
		t.Fatal("an abandoned write was made once etcd was back")
	}
}
