package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestNodeLockDeadline(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	held, err := LockNode(ctx, dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if l, err := LockNode(ctx, dir, 100*time.Millisecond); !errors.Is(err, ErrLockTimeout) {
		if l != nil {
			l.Unlock()
		}
		t.Fatalf("a held lock gave %v, want ErrLockTimeout", err)
	}
	if took := time.Since(start); took < 100*time.Millisecond || took > 2*time.Second {
		t.Fatalf("gave up after %v, want about 100ms", took)
	}
	if _, err := OpenLocalWithin(ctx, dir, 50*time.Millisecond); !errors.Is(err, ErrLockTimeout) {
		t.Fatalf("OpenLocalWithin under a held lock: %v, want ErrLockTimeout", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := LockNode(cctx, dir, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled wait gave %v", err)
	}

	// Released, the lock goes to a waiter at once, and the waiters that
	// gave up have not kept it.
	time.AfterFunc(50*time.Millisecond, func() { held.Unlock() })
	start = time.Now()
	l, err := LockNode(ctx, dir, 5*time.Second)
	if err != nil {
		t.Fatalf("after the release: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("waited %v for a lock released after 50ms", took)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	st, err := OpenLocalWithin(ctx, dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LockNode(ctx, dir, 20*time.Millisecond); !errors.Is(err, ErrLockTimeout) {
		t.Fatalf("an open store does not hold the lock: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = LockNode(ctx, dir, 20*time.Millisecond)
	if err != nil {
		t.Fatalf("Close did not release the lock: %v", err)
	}
	// A store opened under a lock its caller holds leaves it held.
	st, err = l.Open()
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := LockNode(ctx, dir, 20*time.Millisecond); !errors.Is(err, ErrLockTimeout) {
		t.Fatalf("NodeLock.Open's Close released the caller's lock: %v", err)
	}
	l.Unlock()
}
