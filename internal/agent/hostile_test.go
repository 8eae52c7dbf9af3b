package agent_test

import (
	"context"
	"errors"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testutil"
	"github.com/ratchet-cni/ratchet/internal/testutil/etcdtest"
)

// TestReconcileSkipsBadRecords: a malformed end record and a non-numeric
// vni/ key, put in etcd with a plain client, used to fail every agent's
// full reconcile, forever. They are skipped: a good cross-node link still
// comes up, and goes away cleanly.
func TestReconcileSkipsBadRecords(t *testing.T) {
	c := newCluster(t, 2, startEtcd(t))
	n1, n2 := c.nodes[0], c.nodes[1]
	ctx := context.Background()
	for key, val := range map[string]string{
		c.prefix + "/ends/lab%2Fjunk/e1": `{"pod":"lab/junk","ifName":"e1",`,
		c.prefix + "/ends/lab%2Fbad/e1":  `{"pod":"lab/bad","ifName":"e1/x","peerPod":"a","peerIfName":"e1","node":"node2"}`,
		c.prefix + "/vni/not-a-number":   `"a|e1~b|w1"`,
		c.prefix + "/nodes/node9":        `{"name":"node2","vtep":"203.0.113.66"}`,
	} {
		if _, err := n1.reg.Client().Put(ctx, key, val); err != nil {
			t.Fatal(err)
		}
	}
	a, b := c.linkedPair(n1, n2)
	testutil.MustPing(t, a.ns, "198.51.100.2")
	testutil.MustPing(t, b.ns, "198.51.100.1")
	c.del("a")
	c.del("b")
	c.settle()
	if t1, t2 := c.tunnels(n1), c.tunnels(n2); len(t1)+len(t2) != 0 {
		t.Fatalf("tunnels left: node1 %v node2 %v", t1, t2)
	}
}

// TestCrossNodeLinkWithEtcdAuth: with etcd auth on and each agent its own
// user (etcdstore.GrantNode), a cross-node link comes up and goes away as
// without auth, and node1's credentials cannot move node2's VTEP towards
// 203.0.113.66: etcd refuses, and the link keeps working.
func TestCrossNodeLinkWithEtcdAuth(t *testing.T) {
	eps, files, root := etcdtest.StartEmbeddedEtcdAuth(t)
	c := newCluster(t, 2, eps, clusterOpts{auth: &etcdAuth{files: files, root: root}})
	n1, n2 := c.nodes[0], c.nodes[1]
	a, b := c.linkedPair(n1, n2)
	testutil.MustPing(t, a.ns, "198.51.100.2")
	testutil.MustPing(t, b.ns, "198.51.100.1")

	ctx := context.Background()
	err := n1.reg.PutNode(ctx, &store.NodeRecord{Name: n2.name, VTEP: "203.0.113.66", Port: c.port})
	if !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Fatalf("node1 rewriting node2's record: %v, want permission denied", err)
	}
	bEnd, err := n1.reg.End(ctx, "lab/b", "w1")
	if err != nil || bEnd == nil || bEnd.Node != n2.name {
		t.Fatalf("b's end = %+v, %v", bEnd, err)
	}
	if err := n1.reg.UnregisterEnds(ctx, n2.name, bEnd.Attachment, "lab/b", []string{"w1"}); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Fatalf("node1 withdrawing node2's end: %v, want permission denied", err)
	}
	c.settle()
	testutil.MustPing(t, a.ns, "198.51.100.2")

	c.del("a")
	c.del("b")
	c.settle()
	if t1, t2 := c.tunnels(n1), c.tunnels(n2); len(t1)+len(t2) != 0 {
		t.Fatalf("tunnels left: node1 %v node2 %v", t1, t2)
	}
	if vnis, err := n1.reg.VNIs(ctx); err != nil || len(vnis) != 0 {
		t.Fatalf("VNIs left: %v, %v", vnis, err)
	}
}
