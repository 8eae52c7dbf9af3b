package agent_test

import (
	"context"
	"errors"
	"os/exec"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testutil"
)

// linkCtlErr runs `ratchetctl link ARGS` on node n and returns its output
// and error: for commands expected to fail.
func (c *cluster) linkCtlErr(n *node, args ...string) (string, error) {
	argv := append([]string{"link"}, args[0], "--store", n.dir, "--socket", n.socket)
	out, err := exec.Command(ctlBin, append(argv, args[1:]...)...).CombinedOutput()
	return string(out), err
}

// hasLink reports whether pod p has an interface called name.
func hasLink(t *testing.T, p *pod, name string) bool {
	t.Helper()
	_, err := testutil.Handle(t, p.ns).LinkByName(name)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

// hasRecord reports whether node n's local store has a record of link id.
func hasRecord(t *testing.T, n *node, id string) bool {
	t.Helper()
	st, err := store.OpenLocal(n.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rec, err := st.Link(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return rec != nil
}

// assertNoAdded checks that link a:ifA <-> b:ifB left nothing behind: no
// interface in a, no record on either node, no registered end, no
// record in the cluster.
func (c *cluster) assertNoAdded(t *testing.T, a *pod, ifA, ifB string) {
	t.Helper()
	ctx := context.Background()
	n1 := c.nodes[0]
	id, _ := store.LinkID("lab/a", ifA, "lab/b", ifB)
	if hasLink(t, a, ifA) {
		t.Errorf("a still has %s", ifA)
	}
	for _, n := range c.nodes[:2] {
		if hasRecord(t, n, id) {
			t.Errorf("%s still records link %s", n.name, id)
		}
	}
	for _, e := range [][2]string{{"lab/a", ifA}, {"lab/b", ifB}} {
		if got, err := n1.reg.End(ctx, e[0], e[1]); err != nil || got != nil {
			t.Errorf("end %s:%s still registered: %+v, %v", e[0], e[1], got, err)
		}
	}
	if got, _, err := n1.reg.AddedLink(ctx, id); err != nil || got != nil {
		t.Errorf("the cluster still records link %s: %+v, %v", id, got, err)
	}
}

// TestCrossNodeLinkAdd: `ratchetctl link add` on node1 between a (node1)
// and b (node2), both running: both interfaces are born in place with
// their addresses and carrier, traffic passes both ways over a tunnel;
// each pod's restart gets its end back; `link del` from b's node removes both and the tunnel; the link made
// again and deleted from a's node goes too; an add whose name is taken in
// b leaves nothing on either node.
func TestCrossNodeLinkAdd(t *testing.T) {
	c := newCluster(t, 2, startEtcd(t))
	n1, n2 := c.nodes[0], c.nodes[1]
	a, b := c.linkedPair(n1, n2)

	add := func() {
		t.Helper()
		c.linkCtl(n1, "add", "--ips", "203.0.113.1/24,203.0.113.2/24", "lab/a:e2", "lab/b:w2")
		if !hasLink(t, a, "e2") || !hasLink(t, b, "w2") {
			t.Fatal("link add: an interface is missing")
		}
		c.settle()
		waitCarrier(t, a, "e2", true)
		waitCarrier(t, b, "w2", true)
		waitPing(t, a.ns, "203.0.113.2")
		waitPing(t, b.ns, "203.0.113.1")
		if got := len(c.tunnels(n1)) + len(c.tunnels(n2)); got != 4 {
			t.Fatalf("tunnels: node1 %v node2 %v, want two each", c.tunnels(n1), c.tunnels(n2))
		}
	}
	gone := func() {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for hasLink(t, a, "e2") || hasLink(t, b, "w2") {
			if time.Now().After(deadline) {
				t.Fatalf("link del: e2 in a %v, w2 in b %v after 5s", hasLink(t, a, "e2"), hasLink(t, b, "w2"))
			}
			time.Sleep(10 * time.Millisecond)
		}
		c.settle()
		if got := len(c.tunnels(n1)) + len(c.tunnels(n2)); got != 2 {
			t.Fatalf("tunnels: node1 %v node2 %v, want the pair's alone", c.tunnels(n1), c.tunnels(n2))
		}
		c.assertNoAdded(t, a, "e2", "w2")
		// The declared link is untouched.
		testutil.MustPing(t, a.ns, "198.51.100.2")
	}

	add()
	// b restarts: its node's agent makes its end again, from the cluster's
	// record, within a pass (a full one, the latest: the Resync, 2s here).
	annA, annB := pair()
	c.del("b")
	b = c.add("b", n2, annB)
	waitFor(t, "w2 in the restarted b", 10*time.Second, func() bool { return hasLink(t, b, "w2") })
	c.settle()
	waitPing(t, a.ns, "203.0.113.2")
	// And so does a's, on node1.
	c.del("a")
	a = c.add("a", n1, annA)
	waitFor(t, "e2 in the restarted a", 10*time.Second, func() bool { return hasLink(t, a, "e2") })
	c.settle()
	waitPing(t, b.ns, "203.0.113.1")
	c.linkCtl(n2, "del", "lab/b:w2")
	gone()
	add()
	c.linkCtl(n1, "del", "lab/a:e2")
	gone()

	// The name is taken in b (a veth of b's own, as the kernel here has
	// no dummy): b's node cannot make its end, and the add
	// fails with nothing left on either node.
	if err := testutil.Handle(t, b.ns).LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "w3"}, PeerName: "x3"}); err != nil {
		t.Fatal(err)
	}
	out, err := c.linkCtlErr(n1, "add", "lab/a:e3", "lab/b:w3")
	if err == nil {
		t.Fatalf("link add onto a taken name succeeded:\n%s", out)
	}
	t.Logf("link add onto a taken name: %s", out)
	c.settle()
	c.assertNoAdded(t, a, "e3", "w3")
	if got := len(c.tunnels(n1)) + len(c.tunnels(n2)); got != 2 {
		t.Fatalf("tunnels: node1 %v node2 %v, want the pair's alone", c.tunnels(n1), c.tunnels(n2))
	}
	// A pod on no node: the add fails in time, leaving nothing.
	if out, err := c.linkCtlErr(n1, "add", "lab/a:e4", "lab/nobody:w4"); err == nil {
		t.Fatalf("link add to a pod on no node succeeded:\n%s", out)
	}
	if hasLink(t, a, "e4") {
		t.Error("a has e4 after a failed add")
	}
}
