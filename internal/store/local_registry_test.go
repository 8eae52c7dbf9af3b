package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/store/storetest"
)

// dirs gives each test its own store directory, shared by the instances
// the suite opens in that test.
type dirs struct {
	mu sync.Mutex
	m  map[*testing.T]string
}

func (d *dirs) of(t *testing.T) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil {
		d.m = map[*testing.T]string{}
	}
	if d.m[t] == "" {
		d.m[t] = filepath.Join(t.TempDir(), "state")
	}
	return d.m[t]
}

// TestLocalRegistry runs the suite on a *store.Local that stays open for
// the whole test, shared by the suite's instances (one process).
func TestLocalRegistry(t *testing.T) {
	var d dirs
	var mu sync.Mutex
	open := map[*testing.T]*store.Local{}
	storetest.RunRegistry(t, func(t *testing.T) store.Registry {
		mu.Lock()
		defer mu.Unlock()
		if open[t] == nil {
			l, err := store.OpenLocal(d.of(t))
			if err != nil {
				t.Fatal(err)
			}
			open[t] = l
			t.Cleanup(func() { l.Close() })
		}
		return sharedLocal{open[t]}
	})
}

type sharedLocal struct{ *store.Local }

func (sharedLocal) Close() error { return nil }

// TestLocalRegistryPerCall runs the suite with every call opening and
// closing the store, as plugin processes do: the suite's instances are
// processes taking turns on the directory lock.
func TestLocalRegistryPerCall(t *testing.T) {
	var d dirs
	storetest.RunRegistry(t, func(t *testing.T) store.Registry { return perCall(d.of(t)) })
}

type perCall string

func with[T any](dir perCall, fn func(l *store.Local) (T, error)) (T, error) {
	l, err := store.OpenLocal(string(dir))
	if err != nil {
		var zero T
		return zero, err
	}
	defer l.Close()
	return fn(l)
}

func (p perCall) RegisterEnds(ctx context.Context, ends []*store.EndRecord) error {
	_, err := with(p, func(l *store.Local) (any, error) { return nil, l.RegisterEnds(ctx, ends) })
	return err
}

func (p perCall) UnregisterEnds(ctx context.Context, node string, key store.AttachmentKey, pod string, ifNames []string) error {
	_, err := with(p, func(l *store.Local) (any, error) { return nil, l.UnregisterEnds(ctx, node, key, pod, ifNames) })
	return err
}

func (p perCall) End(ctx context.Context, pod, ifName string) (*store.EndRecord, error) {
	return with(p, func(l *store.Local) (*store.EndRecord, error) { return l.End(ctx, pod, ifName) })
}

func (p perCall) Ends(ctx context.Context) ([]*store.EndRecord, error) {
	return with(p, func(l *store.Local) ([]*store.EndRecord, error) { return l.Ends(ctx) })
}

func (p perCall) PutNode(ctx context.Context, n *store.NodeRecord) error {
	_, err := with(p, func(l *store.Local) (any, error) { return nil, l.PutNode(ctx, n) })
	return err
}

func (p perCall) Node(ctx context.Context, name string) (*store.NodeRecord, error) {
	return with(p, func(l *store.Local) (*store.NodeRecord, error) { return l.Node(ctx, name) })
}

func (p perCall) AllocateVNI(ctx context.Context, id string, first, last uint32) (uint32, error) {
	return with(p, func(l *store.Local) (uint32, error) { return l.AllocateVNI(ctx, id, first, last) })
}

func (p perCall) VNI(ctx context.Context, id string) (uint32, error) {
	return with(p, func(l *store.Local) (uint32, error) { return l.VNI(ctx, id) })
}

func (p perCall) VNIs(ctx context.Context) (map[uint32]string, error) {
	return with(p, func(l *store.Local) (map[uint32]string, error) { return l.VNIs(ctx) })
}

func (p perCall) ReleaseVNI(ctx context.Context, id string) error {
	_, err := with(p, func(l *store.Local) (any, error) { return nil, l.ReleaseVNI(ctx, id) })
	return err
}

func (perCall) Close() error { return nil }

// TestLocalRegistryClosed: calls on a closed store wrap ErrUnavailable.
func TestLocalRegistryClosed(t *testing.T) {
	l, err := store.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if _, err := l.AllocateVNI(ctx, "L", 1, 10); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("AllocateVNI on a closed store: %v; want ErrUnavailable", err)
	}
	if err := l.RegisterEnds(ctx, nil); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("RegisterEnds on a closed store: %v; want ErrUnavailable", err)
	}
}
