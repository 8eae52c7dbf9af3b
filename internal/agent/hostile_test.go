package agent_test

import (
	"context"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/testutil"
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
