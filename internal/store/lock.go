package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ErrLockTimeout says that the node lock was not to be had in time:
// another process holds it. A CNI operation reports it as "try again
// later" (code 11).
var ErrLockTimeout = errors.New("the node lock is held by another process")

// NodeLock is the node's lock: an exclusive flock on the lock file of the
// local store's directory. The plugin holds it for a whole operation; the
// node agent holds it while it reads the node's state and while it
// changes it (the parked ends, the tunnels). It also makes waiting for
// the store cheap and fair: bbolt's own lock on its file polls every 50 ms.
// Closing the descriptor (Unlock, or the process's end) releases it.
type NodeLock struct {
	f *os.File
}

// LockNode takes the node lock of the store in dir, creating the directory
// (0700) and lock file (0600) if needed. It waits at most wait (0: for as
// long as it takes) and while ctx lives; then it returns an error wrapping
// ErrLockTimeout (or ctx's error) and holds nothing. Uncontended, it costs
// one flock, as a blocking one would.
func LockNode(ctx context.Context, dir string, wait time.Duration) (*NodeLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if err := checkDir(dir); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	err = flockRetry(f, unix.LOCK_EX|unix.LOCK_NB)
	if err == nil {
		return &NodeLock{f: f}, nil
	}
	if !errors.Is(err, unix.EWOULDBLOCK) {
		f.Close()
		return nil, fmt.Errorf("%w: lock %s: %v", ErrUnavailable, f.Name(), err)
	}
	if err := waitLock(ctx, f, wait); err != nil {
		return nil, err
	}
	return &NodeLock{f: f}, nil
}

// waitLock waits for the flock on f in a blocking flock, which the kernel
// wakes as soon as the lock is free (polling would add its interval to
// every wait). The flock runs in a goroutine that can be abandoned at the
// deadline: it then owns f, and closes it, releasing the lock at once,
// should it get it after all. On an error, f is closed or the goroutine's.
func waitLock(ctx context.Context, f *os.File, wait time.Duration) error {
	var (
		mu        sync.Mutex
		abandoned bool
	)
	got := make(chan error, 1)
	go func() {
		err := flockRetry(f, unix.LOCK_EX)
		mu.Lock()
		defer mu.Unlock()
		if abandoned {
			f.Close()
			return
		}
		got <- err
	}()
	var deadline <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		deadline = t.C
	}
	var why error
	select {
	case err := <-got:
		if err != nil {
			f.Close()
			return fmt.Errorf("%w: lock %s: %v", ErrUnavailable, f.Name(), err)
		}
		return nil
	case <-deadline:
		why = fmt.Errorf("%w (waited %v for %s)", ErrLockTimeout, wait, f.Name())
	case <-ctx.Done():
		why = ctx.Err()
	}
	mu.Lock()
	defer mu.Unlock()
	select {
	case err := <-got:
		// The flock returned as the wait ended.
		if err != nil {
			f.Close()
			return fmt.Errorf("%w: lock %s: %v", ErrUnavailable, f.Name(), err)
		}
		return nil
	default:
		abandoned = true
	}
	return why
}

func flockRetry(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			return err
		}
	}
}

// Unlock releases the lock.
func (l *NodeLock) Unlock() error { return l.f.Close() }
