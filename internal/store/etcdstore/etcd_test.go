package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/store/etcdstore"
	"github.com/ratchet-cni/ratchet/internal/store/storetest"
	"github.com/ratchet-cni/ratchet/internal/testutil/etcdtest"
)

var prefixes atomic.Int64

// opener gives each test a fresh prefix on the cluster at endpoints, and
// each call a new client.
func opener(endpoints []string) storetest.Opener {
	var mu sync.Mutex
	prefix := map[*testing.T]string{}
	return func(t *testing.T) store.Registry {
		mu.Lock()
		if prefix[t] == "" {
			prefix[t] = fmt.Sprintf("/ratchet-test/%d", prefixes.Add(1))
		}
		p := prefix[t]
		mu.Unlock()
		e, err := etcdstore.Open(etcdstore.Config{Endpoints: endpoints, Prefix: p, Timeout: 10 * time.Second, Insecure: true})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
}

func open(t *testing.T, cfg etcdstore.Config) *etcdstore.Etcd {
	t.Helper()
	if cfg.Prefix == "" {
		cfg.Prefix = fmt.Sprintf("/ratchet-test/%d", prefixes.Add(1))
	}
	// The test servers without TLS listen on the loopback of the tests'
	// own netns: plaintext is asked for here.
	cfg.Insecure = cfg.CA == "" && cfg.Cert == ""
	e, err := etcdstore.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func TestRegistryEmbedded(t *testing.T) {
	storetest.RunRegistry(t, opener(etcdtest.StartEmbeddedEtcd(t)))
}

// TestRegistryEtcd34 runs the suite on Debian's etcd 3.4 server: the v3.7
// client must keep working with it.
func TestRegistryEtcd34(t *testing.T) {
	eps, _, _ := etcdtest.StartEtcdBinary(t)
	storetest.RunRegistry(t, opener(eps))
}

func end(pod, ifName, node string) *store.EndRecord {
	return &store.EndRecord{Pod: pod, IfName: ifName, PeerPod: "ns/peer", PeerIfName: "eth1", Node: node,
		Attachment: store.AttachmentKey{Network: "lab", ContainerID: "c-" + pod, IfName: "eth0"}}
}

// TestTLS: a server that requires client certificates refuses a client
// without one, and serves one that presents it.
func TestTLS(t *testing.T) {
	f := etcdtest.GenerateTLS(t)
	eps := etcdtest.StartEmbeddedEtcdTLS(t, f)
	ctx := context.Background()

	good := open(t, etcdstore.Config{Endpoints: eps, CA: f.CA, Cert: f.ClientCert, Key: f.ClientKey, Timeout: 5 * time.Second})
	if err := good.Health(ctx); err != nil {
		t.Fatalf("Health with a client certificate: %v", err)
	}
	if err := good.PutNode(ctx, &store.NodeRecord{Name: "node1", VTEP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	if err := good.RegisterEnds(ctx, []*store.EndRecord{end("ns/a", "eth1", "node1")}); err != nil {
		t.Fatal(err)
	}
	if e, err := good.End(ctx, "ns/a", "eth1"); err != nil || e == nil || e.Node != "node1" {
		t.Fatalf("End over TLS = %+v, %v", e, err)
	}

	var wg sync.WaitGroup
	for name, cfg := range map[string]etcdstore.Config{
		"no client certificate":    {Endpoints: eps, CA: f.CA},
		"untrusted server (no CA)": {Endpoints: eps, Cert: f.ClientCert, Key: f.ClientKey},
	} {
		cfg.Timeout = 500 * time.Millisecond
		bad := open(t, cfg)
		wg.Go(func() {
			start := time.Now()
			err := bad.Health(ctx)
			t.Logf("%s: %v", name, err)
			if err == nil {
				t.Errorf("%s: Health succeeded", name)
			} else if !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("%s: %v does not wrap ErrUnavailable", name, err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("%s: Health took %v with a 0.5s timeout", name, d)
			}
		})
		wg.Go(func() {
			if _, err := bad.End(ctx, "ns/a", "eth1"); err == nil {
				t.Errorf("%s: End succeeded", name)
			}
		})
	}
	wg.Wait()

	if _, err := etcdstore.Open(etcdstore.Config{Endpoints: []string{"http://127.0.0.1:1"}, CA: f.CA}); err == nil {
		t.Error("Open with TLS and an http:// endpoint succeeded")
	}
	if _, err := etcdstore.Open(etcdstore.Config{Endpoints: eps, CA: f.CA, Cert: f.ClientCert}); err == nil {
		t.Error("Open with a client certificate and no key succeeded")
	}
}

// TestUnreachable: every call against an endpoint nobody listens on fails
// within about the timeout with an error that wraps ErrUnavailable.
func TestUnreachable(t *testing.T) {
	const timeout = 300 * time.Millisecond
	port := etcdtest.FreePort(t)
	start := time.Now()
	e := open(t, etcdstore.Config{Endpoints: []string{fmt.Sprintf("127.0.0.1:%d", port)}, Timeout: timeout})
	if d := time.Since(start); d > timeout {
		t.Errorf("Open waited %v for an unreachable cluster", d)
	}
	ctx := context.Background()
	calls := map[string]func() error{
		"Health":       func() error { return e.Health(ctx) },
		"RegisterEnds": func() error { return e.RegisterEnds(ctx, []*store.EndRecord{end("ns/a", "eth1", "n")}) },
		"UnregisterEnds": func() error {
			return e.UnregisterEnds(ctx, "n", store.AttachmentKey{}, "ns/a", []string{"eth1"})
		},
		"End":         func() error { _, err := e.End(ctx, "ns/a", "eth1"); return err },
		"Ends":        func() error { _, err := e.Ends(ctx); return err },
		"PutNode":     func() error { return e.PutNode(ctx, &store.NodeRecord{Name: "n"}) },
		"Node":        func() error { _, err := e.Node(ctx, "n"); return err },
		"AllocateVNI": func() error { _, err := e.AllocateVNI(ctx, "L", 1, 100); return err },
		"VNI":         func() error { _, err := e.VNI(ctx, "L"); return err },
		"VNIs":        func() error { _, err := e.VNIs(ctx); return err },
		"ReleaseVNI":  func() error { return e.ReleaseVNI(ctx, "lab/a|e1~lab/b|w1") },
	}
	var wg sync.WaitGroup
	for name, call := range calls {
		wg.Go(func() {
			start := time.Now()
			err := call()
			d := time.Since(start)
			if !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("%s: %v; want an error wrapping ErrUnavailable", name, err)
			}
			if d < timeout/2 || d > timeout+time.Second {
				t.Errorf("%s failed after %v; want about the timeout %v", name, d, timeout)
			}
		})
	}
	wg.Wait()
	// The caller's own deadline, when shorter, wins.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := e.End(short, "ns/a", "eth1"); !errors.Is(err, store.ErrUnavailable) || time.Since(start) > timeout {
		t.Errorf("End with a 50ms deadline: %v after %v", err, time.Since(start))
	}
}

// TestClusterMemberDown: in a 3-member cluster of etcd 3.4 processes, the
// registry keeps working when the leader dies (killed by its PID); with a
// second member gone there is no quorum, and calls fail with
// ErrUnavailable within the timeout.
func TestClusterMemberDown(t *testing.T) {
	c := etcdtest.StartEtcdCluster(t, 3)
	ctx := context.Background()
	e := open(t, etcdstore.Config{Endpoints: c.Endpoints(), Timeout: 3 * time.Second})
	other := open(t, etcdstore.Config{Endpoints: c.Endpoints(), Prefix: e.Prefix(), Timeout: 3 * time.Second})
	v1, err := e.AllocateVNI(ctx, "L1", 100, 199)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.RegisterEnds(ctx, []*store.EndRecord{end("ns/a", "eth1", "node1")}); err != nil {
		t.Fatal(err)
	}
	// Kill the leader, by its PID.
	leader := leaderOf(t, e, c)
	t.Logf("killing leader %s (pid %d)", leader.Name, leader.PID())
	leader.Kill()
	start := time.Now()
	for i := range 20 {
		id := fmt.Sprintf("L%d", i+2)
		v, err := other.AllocateVNI(ctx, id, 100, 199)
		if err != nil {
			t.Fatalf("AllocateVNI(%s) after the leader died: %v", id, err)
		}
		if v == v1 {
			t.Fatalf("%s got L1's VNI %d", id, v)
		}
		if err := other.RegisterEnds(ctx, []*store.EndRecord{end(fmt.Sprintf("ns/p%d", i), "eth1", "node2")}); err != nil {
			t.Fatalf("RegisterEnds after the leader died: %v", err)
		}
	}
	t.Logf("20 allocations + registrations with a member down: %v", time.Since(start))
	if v, err := e.AllocateVNI(ctx, "L1", 100, 199); err != nil || v != v1 {
		t.Fatalf("L1 after the leader died = %d, %v; want %d", v, err, v1)
	}
	if all, err := e.Ends(ctx); err != nil || len(all) != 21 {
		t.Fatalf("Ends = %d, %v; want 21", len(all), err)
	}
	if err := e.UnregisterEnds(ctx, "node1", end("ns/a", "eth1", "node1").Attachment, "ns/a", []string{"eth1"}); err != nil {
		t.Fatal(err)
	}
	// A second member down: no quorum, ErrUnavailable within the timeout.
	for _, m := range c.Members {
		if m.PID() != 0 {
			m.Kill()
			break
		}
	}
	quick := open(t, etcdstore.Config{Endpoints: c.Endpoints(), Prefix: e.Prefix(), Timeout: time.Second})
	var wg sync.WaitGroup
	for name, call := range map[string]func() error{
		"AllocateVNI":  func() error { _, err := quick.AllocateVNI(ctx, "L99", 100, 199); return err },
		"RegisterEnds": func() error { return quick.RegisterEnds(ctx, []*store.EndRecord{end("ns/z", "eth1", "node1")}) },
		"Ends":         func() error { _, err := quick.Ends(ctx); return err },
		"Health":       func() error { return quick.Health(ctx) },
	} {
		wg.Go(func() {
			start := time.Now()
			if err := call(); !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("%s without quorum: %v; want ErrUnavailable", name, err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("%s without quorum took %v (timeout 1s)", name, d)
			}
		})
	}
	wg.Wait()
}

func leaderOf(t *testing.T, e *etcdstore.Etcd, c *etcdtest.Cluster) *etcdtest.Member {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, m := range c.Members {
		st, err := e.Client().Status(ctx, m.ClientURL)
		if err != nil {
			t.Fatal(err)
		}
		if st.Header.MemberId == st.Leader {
			return m
		}
	}
	t.Fatal("no leader")
	return nil
}

// next returns the next change, failing the test after 10s.
func next(t *testing.T, ch <-chan store.Change) store.Change {
	t.Helper()
	select {
	case c, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no change within 10s")
	}
	return store.Change{}
}

func expect(t *testing.T, ch <-chan store.Change, want store.Change) {
	t.Helper()
	if got := next(t, ch); got != want {
		t.Fatalf("change %+v, want %+v", got, want)
	}
}

// TestWatch: the agent's watch starts with a Resync, sees what another
// client changes, survives an etcd restart (kill, restart on the same data
// dir and ports) with a Resync and keeps delivering, and closes with its
// context.
func TestWatch(t *testing.T) {
	m := etcdtest.StartEtcdMember(t)
	ctx := context.Background()
	cfg := etcdstore.Config{Endpoints: []string{m.ClientURL}, Timeout: 2 * time.Second}
	w := open(t, cfg)
	cfg.Prefix = w.Prefix()
	writer := open(t, cfg)
	// Another prefix on the same cluster is not seen.
	stranger := open(t, etcdstore.Config{Endpoints: []string{m.ClientURL}, Prefix: w.Prefix() + "0"})

	// Something registered before the watch is seen by the resync read.
	if err := writer.RegisterEnds(ctx, []*store.EndRecord{end("ns/before", "eth1", "node1")}); err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	ch := w.Watch(wctx)
	expect(t, ch, store.Change{Resync: true})

	if err := stranger.RegisterEnds(ctx, []*store.EndRecord{end("ns/x", "eth1", "node9")}); err != nil {
		t.Fatal(err)
	}
	a := end("ns/a.b", "e%1", "node/2") // escaped segments decode back
	if err := writer.RegisterEnds(ctx, []*store.EndRecord{a}); err != nil {
		t.Fatal(err)
	}
	expect(t, ch, store.Change{Kind: "end", Node: "node/2", Pod: "ns/a.b", IfName: "e%1"})
	if err := writer.UnregisterEnds(ctx, "node/2", a.Attachment, a.Pod, []string{a.IfName}); err != nil {
		t.Fatal(err)
	}
	expect(t, ch, store.Change{Kind: "end", Node: "node/2", Pod: "ns/a.b", IfName: "e%1", Deleted: true})
	if err := writer.PutNode(ctx, &store.NodeRecord{Name: "node2", VTEP: "192.0.2.2"}); err != nil {
		t.Fatal(err)
	}
	expect(t, ch, store.Change{Kind: "node", Node: "node2"})
	id, _ := store.LinkID("ns/a", "eth1", "ns/b", "eth1")
	if _, err := writer.AllocateVNI(ctx, id, 10, 20); err != nil {
		t.Fatal(err)
	}
	expect(t, ch, store.Change{Kind: "vni", LinkID: id})
	if err := writer.ReleaseVNI(ctx, id); err != nil {
		t.Fatal(err)
	}
	expect(t, ch, store.Change{Kind: "vni", LinkID: id, Deleted: true})

	// etcd restarts: the watch comes back with a Resync.
	m.Kill()
	time.Sleep(300 * time.Millisecond) // an outage, not just a blip
	m.Restart(t, true)
	expect(t, ch, store.Change{Resync: true})
	if err := writer.RegisterEnds(ctx, []*store.EndRecord{end("ns/after", "eth1", "node1")}); err != nil {
		t.Fatal(err)
	}
	expect(t, ch, store.Change{Kind: "end", Node: "node1", Pod: "ns/after", IfName: "eth1"})
	if all, err := w.Ends(ctx); err != nil || len(all) != 2 {
		t.Fatalf("Ends after the restart = %d, %v; want 2 (ns/before, ns/after)", len(all), err)
	}

	stop()
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-time.After(5 * time.Second):
			t.Fatal("watch channel not closed 5s after its context ended")
		}
	}
}

// TestWatchStartsWhileDown: a watch started while etcd is down sends its
// first Resync once etcd is up.
func TestWatchStartsWhileDown(t *testing.T) {
	m := etcdtest.StartEtcdMember(t)
	w := open(t, etcdstore.Config{Endpoints: []string{m.ClientURL}, Timeout: time.Second})
	m.Kill()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	ch := w.Watch(ctx)
	select {
	case c := <-ch:
		t.Fatalf("change %+v while etcd is down", c)
	case <-time.After(500 * time.Millisecond):
	}
	m.Restart(t, true)
	expect(t, ch, store.Change{Resync: true})
	if err := w.PutNode(context.Background(), &store.NodeRecord{Name: "n1"}); err != nil {
		t.Fatal(err)
	}
	expect(t, ch, store.Change{Kind: "node", Node: "n1"})
}
