package agent

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ratchet-cni/ratchet/internal/store"
)

// The plugin's registrations reach etcd through a queue, in the order they
// arrive, so that an ADD does not wait for etcd's round trip and commit
// (a network round trip and a disk write on a quorum) while the agent
// knows etcd is reachable. When it does not know (no ready connection), the ADD waits
// for the write, and fails with code 11 if it does not go through: an ADD
// never succeeds against an etcd known to be down. A queued write lost
// with the agent is made again by its first resync, which re-registers the
// local ends the registry lacks and withdraws those of attachments gone.

// write is one queued registry change; done receives its outcome.
type write struct {
	op   func(context.Context) error
	done chan error
	// abandoned: whoever queued it no longer wants it made (an ADD that
	// gave up); it is dropped unless it went through already.
	abandoned atomic.Bool
}

// report sends an outcome to whoever waits for it, if anyone still does.
func (wr *write) report(err error) {
	select {
	case wr.done <- err:
	default:
	}
}

// writer applies writes one after another.
type writer struct {
	mu      sync.Mutex
	queue   []*write
	kick    chan struct{}
	timeout time.Duration
}

func newWriter(timeout time.Duration) *writer {
	return &writer{kick: make(chan struct{}, 1), timeout: timeout}
}

// enqueue adds op and returns it; its outcome is sent on its done.
func (w *writer) enqueue(op func(context.Context) error) *write {
	wr := &write{op: op, done: make(chan error, 1)}
	w.mu.Lock()
	w.queue = append(w.queue, wr)
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
	return wr
}

// pending reports how many writes wait or are being made; a write whose
// outcome was reported is no longer counted.
func (w *writer) pending() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue)
}

// run applies the queue until ctx ends. A write that fails because etcd is
// unreachable is tried again, in place, until it goes through: the ones
// behind it wait, so the order holds.
func (w *writer) run(ctx context.Context, onErr func(error)) {
	backoff := 50 * time.Millisecond
	for {
		w.mu.Lock()
		var head *write
		if len(w.queue) > 0 {
			head = w.queue[0]
		}
		w.mu.Unlock()
		if head == nil {
			select {
			case <-ctx.Done():
				return
			case <-w.kick:
			}
			continue
		}
		var err error
		if !head.abandoned.Load() {
			cctx, cancel := context.WithTimeout(ctx, w.timeout)
			err = head.op(cctx)
			cancel()
		}
		if err != nil && errors.Is(err, store.ErrUnavailable) {
			head.report(err) // the waiting ADD, if any, gives up; the write stays
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		if err != nil {
			onErr(err) // not for retrying: a record etcd refuses
		}
		// Off the queue before its waiter hears the outcome: a waiter that
		// then asks pending (Settle does) must not count a write it was
		// told is done.
		w.mu.Lock()
		w.queue = w.queue[1:]
		w.mu.Unlock()
		head.report(err)
	}
}
