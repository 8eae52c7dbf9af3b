// Package storetest is the conformance suite that every store.Registry
// passes: the local store's and etcd's.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/store"
)

// Opener returns a Registry on the state of t. Each test t (every subtest
// is a new t) starts from fresh, empty state; calling it again with the same
// t returns another instance (another client, another process's opener) on
// that same state, as the nodes of a cluster share one. The suite closes
// every instance it opens, once.
type Opener func(t *testing.T) store.Registry

// RunRegistry runs the suite, each case in a subtest with fresh state.
func RunRegistry(t *testing.T, open Opener) {
	cases := []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"MissingIsNil", testMissing},
		{"RegisterEnds", testRegister},
		{"ReplaceAndStaleUnregister", testReplace},
		{"SharedAcrossInstances", testShared},
		{"Nodes", testNodes},
		{"AllocateVNI", testAllocate},
		{"InvalidRange", testInvalidRange},
		{"Exhaustion", testExhaustion},
		{"ReleaseVNI", testRelease},
		{"ReleaseKeepsAVNIInUse", testReleaseKeepsInUse},
		{"ManyEnds", testManyEnds},
		{"Concurrent", testConcurrent},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.fn(t, open) })
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func opened(t *testing.T, open Opener) store.Registry {
	t.Helper()
	r := open(t)
	if r == nil {
		t.Fatal("open returned nil")
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

func key(id string) store.AttachmentKey {
	return store.AttachmentKey{Network: "lab", ContainerID: id, IfName: "eth0"}
}

// end makes pod's end ifName toward peer's peerIf on node, made by
// attachment container.
func end(pod, ifName, peer, peerIf, node, container string) *store.EndRecord {
	return &store.EndRecord{Pod: pod, IfName: ifName, PeerPod: peer, PeerIfName: peerIf, Node: node, Attachment: key(container)}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// announce puts the records of nodes: End finds an end only on a node
// that announced itself (see store.Registry.End).
func announce(t *testing.T, r store.Registry, nodes ...string) {
	t.Helper()
	for i, n := range nodes {
		must(t, r.PutNode(ctxFor(t), &store.NodeRecord{Name: n, VTEP: fmt.Sprintf("192.0.2.%d", 100+i), Port: 4789}))
	}
}

func wantEnd(t *testing.T, r store.Registry, pod, ifName string, want *store.EndRecord) {
	t.Helper()
	got, err := r.End(ctxFor(t), pod, ifName)
	if err != nil {
		t.Fatalf("End(%s, %s): %v", pod, ifName, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("End(%s, %s) = %+v, want %+v", pod, ifName, got, want)
	}
}

func endNames(t *testing.T, r store.Registry) []string {
	t.Helper()
	all, err := r.Ends(ctxFor(t))
	if err != nil {
		t.Fatalf("Ends: %v", err)
	}
	var names []string
	for _, e := range all {
		names = append(names, e.Pod+"|"+e.IfName+"@"+e.Node)
	}
	sort.Strings(names)
	return names
}

func testMissing(t *testing.T, open Opener) {
	r, ctx := opened(t, open), ctxFor(t)
	if e, err := r.End(ctx, "ns/nobody", "eth1"); e != nil || err != nil {
		t.Errorf("End of a missing end = %+v, %v; want nil, nil", e, err)
	}
	if all, err := r.Ends(ctx); len(all) != 0 || err != nil {
		t.Errorf("Ends of an empty registry = %+v, %v", all, err)
	}
	if n, err := r.Node(ctx, "nowhere"); n != nil || err != nil {
		t.Errorf("Node of a missing node = %+v, %v; want nil, nil", n, err)
	}
	if v, err := r.VNI(ctx, "a|x~b|y"); v != 0 || err != nil {
		t.Errorf("VNI of a link without one = %d, %v; want 0, nil", v, err)
	}
	if m, err := r.VNIs(ctx); len(m) != 0 || err != nil {
		t.Errorf("VNIs of an empty registry = %v, %v", m, err)
	}
	if err := r.ReleaseVNI(ctx, "a|x~b|y"); err != nil {
		t.Errorf("ReleaseVNI of a link without one: %v", err)
	}
	if err := r.UnregisterEnds(ctx, "node1", key("c1"), "ns/nobody", []string{"eth1"}); err != nil {
		t.Errorf("UnregisterEnds of missing ends: %v", err)
	}
}

func testRegister(t *testing.T, open Opener) {
	r, ctx := opened(t, open), ctxFor(t)
	// Names with the characters pod names and ids hold: / | ~ % and space.
	a1 := end("ns/a", "eth1", "ns/b", "eth1", "node1", "c1")
	a2 := end("ns/a", "eth2", "other/c_d", "e%2", "node1", "c1")
	b1 := end("ns/b", "eth1", "ns/a", "eth1", "node2", "c2")
	announce(t, r, "node1", "node2")
	must(t, r.RegisterEnds(ctx, []*store.EndRecord{a1, a2}))
	must(t, r.RegisterEnds(ctx, []*store.EndRecord{b1}))
	must(t, r.RegisterEnds(ctx, []*store.EndRecord{b1})) // safe to repeat
	wantEnd(t, r, "ns/a", "eth1", a1)
	wantEnd(t, r, "ns/a", "eth2", a2)
	wantEnd(t, r, "ns/b", "eth1", b1)
	wantEnd(t, r, "ns/a", "eth3", nil)
	wantEnd(t, r, "ns", "a/eth1", nil) // no confusion across the separator
	if got, want := endNames(t, r), []string{"ns/a|eth1@node1", "ns/a|eth2@node1", "ns/b|eth1@node2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Ends = %v, want %v", got, want)
	}
	if !a1.Declares(b1) || !b1.Declares(a1) || a1.LinkID() != b1.LinkID() {
		t.Fatalf("the two ends of a link disagree: %q vs %q", a1.LinkID(), b1.LinkID())
	}
	// The attachment that made them removes them; other ends stay.
	must(t, r.UnregisterEnds(ctx, "node1", key("c1"), "ns/a", []string{"eth1", "eth2"}))
	must(t, r.UnregisterEnds(ctx, "node1", key("c1"), "ns/a", []string{"eth1", "eth2"})) // safe to repeat
	wantEnd(t, r, "ns/a", "eth1", nil)
	wantEnd(t, r, "ns/a", "eth2", nil)
	if got, want := endNames(t, r), []string{"ns/b|eth1@node2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Ends after unregister = %v, want %v", got, want)
	}
}

// testReplace: a pod comes back (on another node, or with another
// attachment on the same node) before the old attachment's DEL; the stale
// unregister leaves the new registration.
func testReplace(t *testing.T, open Opener) {
	r, ctx := opened(t, open), ctxFor(t)
	old1 := end("ns/a", "eth1", "ns/b", "eth1", "node1", "c1")
	old2 := end("ns/a", "eth2", "ns/c", "eth1", "node1", "c1")
	announce(t, r, "node1", "node2")
	must(t, r.RegisterEnds(ctx, []*store.EndRecord{old1, old2}))
	// The pod moved to node2 (only eth1 declared there), and a new
	// attachment on node1 re-made nothing.
	moved := end("ns/a", "eth1", "ns/b", "eth1", "node2", "c9")
	must(t, r.RegisterEnds(ctx, []*store.EndRecord{moved}))
	wantEnd(t, r, "ns/a", "eth1", moved)
	// The old node's DEL: eth1 was replaced and stays, eth2 was still its.
	must(t, r.UnregisterEnds(ctx, "node1", key("c1"), "ns/a", []string{"eth1", "eth2"}))
	wantEnd(t, r, "ns/a", "eth1", moved)
	wantEnd(t, r, "ns/a", "eth2", nil)
	// Same node, another attachment (the runtime re-created the sandbox):
	// the older attachment's unregister leaves the newer one's end.
	again := end("ns/a", "eth1", "ns/b", "eth1", "node2", "c10")
	must(t, r.RegisterEnds(ctx, []*store.EndRecord{again}))
	must(t, r.UnregisterEnds(ctx, "node2", key("c9"), "ns/a", []string{"eth1"}))
	wantEnd(t, r, "ns/a", "eth1", again)
	// The right node but another attachment key, or the right key on
	// another node: both stay.
	must(t, r.UnregisterEnds(ctx, "node1", key("c10"), "ns/a", []string{"eth1"}))
	wantEnd(t, r, "ns/a", "eth1", again)
	// The owner removes it.
	must(t, r.UnregisterEnds(ctx, "node2", key("c10"), "ns/a", []string{"eth1"}))
	wantEnd(t, r, "ns/a", "eth1", nil)
	if got := endNames(t, r); len(got) != 0 {
		t.Fatalf("Ends = %v, want none", got)
	}
}

func testShared(t *testing.T, open Opener) {
	a, b := opened(t, open), opened(t, open)
	ctx := ctxFor(t)
	e := end("ns/a", "eth1", "ns/b", "eth1", "node1", "c1")
	announce(t, a, "node1")
	must(t, a.RegisterEnds(ctx, []*store.EndRecord{e}))
	wantEnd(t, b, "ns/a", "eth1", e)
	must(t, b.PutNode(ctx, &store.NodeRecord{Name: "node1", VTEP: "192.0.2.1", Port: 4789}))
	if n, err := a.Node(ctx, "node1"); err != nil || n == nil || n.VTEP != "192.0.2.1" {
		t.Fatalf("Node via another instance = %+v, %v", n, err)
	}
	va, err := a.AllocateVNI(ctx, lid("L1"), 100, 199)
	must(t, err)
	vb, err := b.AllocateVNI(ctx, lid("L1"), 100, 199)
	must(t, err)
	if va != vb {
		t.Fatalf("the two ends' agents got VNIs %d and %d for one link", va, vb)
	}
	must(t, b.UnregisterEnds(ctx, "node1", key("c1"), "ns/a", []string{"eth1"}))
	wantEnd(t, a, "ns/a", "eth1", nil)
}

func testNodes(t *testing.T, open Opener) {
	r, ctx := opened(t, open), ctxFor(t)
	n1 := &store.NodeRecord{Name: "node1", VTEP: "192.0.2.1", Port: 4789}
	n2 := &store.NodeRecord{Name: "node/2", VTEP: "2001:db8::2", Port: 8472}
	must(t, r.PutNode(ctx, n1))
	must(t, r.PutNode(ctx, n2))
	for _, want := range []*store.NodeRecord{n1, n2} {
		got, err := r.Node(ctx, want.Name)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("Node(%s) = %+v, %v; want %+v", want.Name, got, err, want)
		}
	}
	// A node that comes back with another address replaces its record.
	n1b := &store.NodeRecord{Name: "node1", VTEP: "192.0.2.11", Port: 4789}
	must(t, r.PutNode(ctx, n1b))
	if got, err := r.Node(ctx, "node1"); err != nil || !reflect.DeepEqual(got, n1b) {
		t.Fatalf("Node after replace = %+v, %v; want %+v", got, err, n1b)
	}
}

func testAllocate(t *testing.T, open Opener) {
	r, ctx := opened(t, open), ctxFor(t)
	const first, last = 5000, 5999
	id1, _ := store.LinkID("ns/a", "eth1", "ns/b", "eth1")
	id2, _ := store.LinkID("ns/a", "eth2", "ns/c", "eth1")
	v1, err := r.AllocateVNI(ctx, id1, first, last)
	must(t, err)
	if v1 < first || v1 > last {
		t.Fatalf("VNI %d outside [%d, %d]", v1, first, last)
	}
	if v1 != store.FirstCandidateVNI(id1, first, last) {
		t.Errorf("first VNI of an empty range is %d, want the first candidate %d", v1, store.FirstCandidateVNI(id1, first, last))
	}
	again, err := r.AllocateVNI(ctx, id1, first, last)
	if err != nil || again != v1 {
		t.Fatalf("second AllocateVNI = %d, %v; want %d (idempotent)", again, err, v1)
	}
	v2, err := r.AllocateVNI(ctx, id2, first, last)
	must(t, err)
	if v2 == v1 || v2 < first || v2 > last {
		t.Fatalf("VNI of another link = %d (first link's %d)", v2, v1)
	}
	if got, err := r.VNI(ctx, id1); err != nil || got != v1 {
		t.Fatalf("VNI(id1) = %d, %v; want %d", got, err, v1)
	}
	if m, err := r.VNIs(ctx); err != nil || !reflect.DeepEqual(m, map[uint32]string{v1: id1, v2: id2}) {
		t.Fatalf("VNIs = %v, %v", m, err)
	}
	// A link that has a VNI keeps it, whatever range a later call names.
	if got, err := r.AllocateVNI(ctx, id1, 1, 10); err != nil || got != v1 {
		t.Fatalf("AllocateVNI with another range = %d, %v; want %d", got, err, v1)
	}
	// Colliding first candidates probe on, wrapping around the range.
	ids := map[uint32]string{}
	for i := range 8 {
		id := fmt.Sprintf("wrap-%d", i)
		v, err := r.AllocateVNI(ctx, id, 7, 9+uint32(i%2)) // a range of 3 or 4: collisions certain
		if i >= 4 {
			if !errors.Is(err, store.ErrVNIExhausted) {
				t.Fatalf("AllocateVNI #%d in a full range = %d, %v; want ErrVNIExhausted", i, v, err)
			}
			continue
		}
		must(t, err)
		if other, dup := ids[v]; dup {
			t.Fatalf("VNI %d given to %s and %s", v, other, id)
		}
		ids[v] = id
	}
}

func testInvalidRange(t *testing.T, open Opener) {
	r, ctx := opened(t, open), ctxFor(t)
	for _, rg := range [][2]uint32{{0, 10}, {20, 10}, {1, 1 << 24}} {
		if v, err := r.AllocateVNI(ctx, lid("L"), rg[0], rg[1]); err == nil || errors.Is(err, store.ErrVNIExhausted) {
			t.Errorf("AllocateVNI in [%d, %d] = %d, %v; want an invalid-range error", rg[0], rg[1], v, err)
		}
	}
}

func testExhaustion(t *testing.T, open Opener) {
	r, ctx := opened(t, open), ctxFor(t)
	const first, last = 10, 12
	got := map[uint32]string{}
	for _, id := range []string{lid("L1"), lid("L2"), lid("L3")} {
		v, err := r.AllocateVNI(ctx, id, first, last)
		must(t, err)
		if other, dup := got[v]; dup {
			t.Fatalf("VNI %d given to %s and %s", v, other, id)
		}
		got[v] = id
	}
	if v, err := r.AllocateVNI(ctx, lid("L4"), first, last); !errors.Is(err, store.ErrVNIExhausted) {
		t.Fatalf("AllocateVNI in a full range = %d, %v; want ErrVNIExhausted", v, err)
	}
	if v, err := r.VNI(ctx, lid("L4")); v != 0 || err != nil {
		t.Fatalf("a failed allocation left VNI %d, %v", v, err)
	}
	// A link that has one still gets it in a full range.
	for v, id := range got {
		if again, err := r.AllocateVNI(ctx, id, first, last); err != nil || again != v {
			t.Fatalf("AllocateVNI(%s) in a full range = %d, %v; want %d", id, again, err, v)
		}
	}
	// Releasing one frees it for the next link.
	v2, err := r.VNI(ctx, lid("L2"))
	must(t, err)
	must(t, r.ReleaseVNI(ctx, lid("L2")))
	if v, err := r.AllocateVNI(ctx, lid("L4"), first, last); err != nil || v != v2 {
		t.Fatalf("AllocateVNI after a release = %d, %v; want the released %d", v, err, v2)
	}
	if m, err := r.VNIs(ctx); err != nil || len(m) != 3 || m[v2] != lid("L4") {
		t.Fatalf("VNIs = %v, %v", m, err)
	}
}

func testRelease(t *testing.T, open Opener) {
	r, ctx := opened(t, open), ctxFor(t)
	v, err := r.AllocateVNI(ctx, lid("L1"), 42, 42)
	must(t, err)
	if v != 42 {
		t.Fatalf("the only VNI of [42, 42] is %d", v)
	}
	if _, err := r.AllocateVNI(ctx, lid("L2"), 42, 42); !errors.Is(err, store.ErrVNIExhausted) {
		t.Fatalf("second link in a one-VNI range: %v; want ErrVNIExhausted", err)
	}
	must(t, r.ReleaseVNI(ctx, lid("L1")))
	must(t, r.ReleaseVNI(ctx, lid("L1"))) // safe to repeat
	if v, err := r.VNI(ctx, lid("L1")); v != 0 || err != nil {
		t.Fatalf("VNI after release = %d, %v", v, err)
	}
	if m, err := r.VNIs(ctx); len(m) != 0 || err != nil {
		t.Fatalf("VNIs after release = %v, %v", m, err)
	}
	if v, err := r.AllocateVNI(ctx, lid("L2"), 42, 42); err != nil || v != 42 {
		t.Fatalf("another link after the release = %d, %v; want 42", v, err)
	}
	// Releasing a link that has none leaves the others' VNIs.
	must(t, r.ReleaseVNI(ctx, lid("L1")))
	if v, err := r.VNI(ctx, lid("L2")); v != 42 || err != nil {
		t.Fatalf("VNI(L2) = %d, %v; want 42", v, err)
	}
	if v, err := r.AllocateVNI(ctx, lid("L1"), 42, 42); !errors.Is(err, store.ErrVNIExhausted) {
		t.Fatalf("L1 again = %d, %v; want ErrVNIExhausted", v, err)
	}
}

// testConcurrent: 100 goroutines over 4 instances, for 40 links (each
// asked for by 2 or 3 goroutines on different instances, as both ends'
// agents do) in a range of 64, so that first candidates collide: every
// link gets exactly one VNI and no VNI goes to two links. Ends registered
// at the same time all land.
func testConcurrent(t *testing.T, open Opener) {
	const instances, workers, links = 4, 100, 40
	const first, last = 1000, 1063
	var rs []store.Registry
	for range instances {
		rs = append(rs, opened(t, open))
	}
	ctx := ctxFor(t)
	var (
		mu   sync.Mutex
		got  = map[string]map[uint32]bool{}
		errs []error
		wg   sync.WaitGroup
		gate = make(chan struct{})
	)
	for i := range workers {
		wg.Go(func() {
			<-gate
			r := rs[i%instances]
			id := fmt.Sprintf("ns/p%d|eth1~ns/q%d|eth1", i%links, i%links)
			v, err := r.AllocateVNI(ctx, id, first, last)
			if err == nil {
				err = r.RegisterEnds(ctx, []*store.EndRecord{end(fmt.Sprintf("ns/w%d", i), "eth1", "ns/x", "eth1", fmt.Sprintf("node%d", i%instances), "c")})
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("worker %d: %w", i, err))
				return
			}
			if got[id] == nil {
				got[id] = map[uint32]bool{}
			}
			got[id][v] = true
		})
	}
	close(gate)
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	owner := map[uint32]string{}
	for id, vs := range got {
		if len(vs) != 1 {
			t.Errorf("link %s got %d VNIs: %v", id, len(vs), vs)
		}
		for v := range vs {
			if v < first || v > last {
				t.Errorf("link %s got VNI %d outside the range", id, v)
			}
			if other, dup := owner[v]; dup {
				t.Errorf("VNI %d given to %s and %s", v, other, id)
			}
			owner[v] = id
		}
	}
	if len(got) != links {
		t.Errorf("%d links got VNIs, want %d", len(got), links)
	}
	m, err := rs[0].VNIs(ctx)
	must(t, err)
	if !reflect.DeepEqual(m, owner) {
		t.Errorf("VNIs() = %v\nwant the allocations %v", m, owner)
	}
	if n := len(endNames(t, rs[1])); n != workers {
		t.Errorf("%d ends registered, want %d", n, workers)
	}
}

// lid is a link id as the plugin makes them (store.LinkID), between
// name-a's e1 and name-b's w1: ReleaseVNI reads the ends from it.
func lid(name string) string {
	id, _ := store.LinkID("lab/"+name+"-a", "e1", "lab/"+name+"-b", "w1")
	return id
}

// A link whose pods came back keeps its VNI, whatever an agent that read
// the ends before decides; an id that does not tell its ends keeps it too.
func testReleaseKeepsInUse(t *testing.T, open Opener) {
	r := open(t)
	ctx := context.Background()
	id := lid("L9")
	v, err := r.AllocateVNI(ctx, id, 100, 199)
	must(t, err)
	end := &store.EndRecord{Pod: "lab/L9-b", IfName: "w1", PeerPod: "lab/L9-a", PeerIfName: "e1", Node: "n2",
		Attachment: store.AttachmentKey{Network: "lab", ContainerID: "c9", IfName: "eth0"}}
	must(t, r.RegisterEnds(ctx, []*store.EndRecord{end}))
	must(t, r.ReleaseVNI(ctx, id))
	if got, err := r.VNI(ctx, id); err != nil || got != v {
		t.Fatalf("VNI after a release with an end registered: %d, %v; want %d kept", got, err, v)
	}
	must(t, r.UnregisterEnds(ctx, "n2", end.Attachment, end.Pod, []string{end.IfName}))
	must(t, r.ReleaseVNI(ctx, id))
	if got, err := r.VNI(ctx, id); err != nil || got != 0 {
		t.Fatalf("VNI after the last end went and a release: %d, %v; want none", got, err)
	}
	odd := "lab/x|e~1~lab/y|w1" // unescaped: LinkID cannot have made it
	_, err = r.AllocateVNI(ctx, odd, 100, 199)
	must(t, err)
	must(t, r.ReleaseVNI(ctx, odd))
	if got, err := r.VNI(ctx, odd); err != nil || got == 0 {
		t.Fatalf("an id that does not tell its ends lost its VNI: %d, %v", got, err)
	}
}

// A pod with more links than etcd takes operations in one transaction
// (128 by default) registers and withdraws them all.
func testManyEnds(t *testing.T, open Opener) {
	r := open(t)
	ctx := context.Background()
	key := store.AttachmentKey{Network: "lab", ContainerID: "big", IfName: "eth0"}
	var ends []*store.EndRecord
	var names []string
	for i := range 300 {
		name := fmt.Sprintf("e%d", i)
		names = append(names, name)
		ends = append(ends, &store.EndRecord{Pod: "lab/big", IfName: name, PeerPod: "lab/peer", PeerIfName: name, Node: "n1", Attachment: key})
	}
	must(t, r.RegisterEnds(ctx, ends))
	if all, err := r.Ends(ctx); err != nil || len(all) != 300 {
		t.Fatalf("Ends after registering 300: %d, %v", len(all), err)
	}
	must(t, r.UnregisterEnds(ctx, "n1", key, "lab/big", names))
	if all, err := r.Ends(ctx); err != nil || len(all) != 0 {
		t.Fatalf("Ends after withdrawing 300: %d, %v", len(all), err)
	}
}
