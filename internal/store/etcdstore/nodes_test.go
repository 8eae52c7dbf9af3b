package etcdstore_test

import (
	"context"
	"slices"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/store/etcdstore"
	"github.com/ratchet-cni/ratchet/internal/testutil/etcdtest"
)

// TestNodes: Nodes lists the prefix's nodes, with their latest records,
// none of another prefix, and not a deleted one.
func TestNodes(t *testing.T) {
	eps := etcdtest.StartEmbeddedEtcd(t)
	ctx := context.Background()
	e := open(t, etcdstore.Config{Endpoints: eps})
	other := open(t, etcdstore.Config{Endpoints: eps})
	if got, err := e.Nodes(ctx); err != nil || len(got) != 0 {
		t.Fatalf("Nodes of an empty prefix: %v, %v", got, err)
	}
	for _, n := range []*store.NodeRecord{
		{Name: "n1", VTEP: "192.0.2.1", Port: 4789}, {Name: "n2", VTEP: "2001:db8::2", Port: 4789},
		{Name: "n1", VTEP: "192.0.2.11", Port: 4789},
	} {
		if err := e.PutNode(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := other.PutNode(ctx, &store.NodeRecord{Name: "x", VTEP: "203.0.113.9", Port: 4789}); err != nil {
		t.Fatal(err)
	}
	vteps := func() []string {
		t.Helper()
		got, err := e.Nodes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var v []string
		for _, n := range got {
			v = append(v, n.Name+"="+n.VTEP)
		}
		slices.Sort(v)
		return v
	}
	if got, want := vteps(), []string{"n1=192.0.2.11", "n2=2001:db8::2"}; !slices.Equal(got, want) {
		t.Fatalf("Nodes: %v, want %v", got, want)
	}
	if _, err := e.Client().Delete(ctx, e.Prefix()+"/nodes/n2"); err != nil {
		t.Fatal(err)
	}
	if got, want := vteps(), []string{"n1=192.0.2.11"}; !slices.Equal(got, want) {
		t.Fatalf("Nodes after n2's record was deleted: %v, want %v", got, want)
	}
}
