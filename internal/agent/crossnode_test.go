package agent_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/vishvananda/netlink"

	"github.com/ratchet-cni/ratchet/internal/agent"
	"github.com/ratchet-cni/ratchet/internal/labop"
	"github.com/ratchet-cni/ratchet/internal/podlink"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/store/etcdstore"
	"github.com/ratchet-cni/ratchet/internal/testutil"
)

// linkedPair starts pods a on na and b on nb, linked by pair(), and waits
// for the agents.
func (c *cluster) linkedPair(na, nb *node) (a, b *pod) {
	c.t.Helper()
	annA, annB := pair()
	a, b = c.add("a", na, annA), c.add("b", nb, annB)
	c.settle()
	return a, b
}

// tunnel returns node n's tunnel netdev called name.
func (c *cluster) tunnel(t *testing.T, n *node, name string) *netlink.Vxlan {
	t.Helper()
	l, err := testutil.Handle(t, parkingOf(t, n)).LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return l.(*netlink.Vxlan)
}

// linkStates is what ratchetctl links shows on node n.
func linkStates(t *testing.T, n *node) []podlink.State {
	t.Helper()
	st, err := store.OpenLocal(n.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	park := podlink.OpenParkingOf(context.Background(), st)
	if park != nil {
		defer park.Close()
	}
	views, err := podlink.ViewLinks(context.Background(), st, park)
	if err != nil {
		t.Fatal(err)
	}
	var states []podlink.State
	for _, v := range views {
		states = append(states, v.State)
	}
	return states
}

// pair declares a <-> b: a's e1 (192.0.2.x is the underlay, so the link
// uses 198.51.100.0/24) to b's w1.
func pair() (a, b map[string]string) {
	return linksJSON(podLink("e1", "198.51.100.1/24", "b", "w1")),
		linksJSON(podLink("w1", "198.51.100.2/24", "a", "e1"))
}

func TestCrossNodeLink(t *testing.T) {
	c := newCluster(t, 2, startEtcd(t))
	n1, n2 := c.nodes[0], c.nodes[1]
	annA, annB := pair()
	a := c.add("a", n1, annA)
	// a's interface exists at once, without carrier: its peer is not there.
	if _, mtu, up := ifindex(t, a, "e1"); up || mtu != 1450 {
		t.Fatalf("a's e1 before b: up=%v mtu=%d, want no carrier and MTU 1500-50", up, mtu)
	}
	b := c.add("b", n2, annB)
	c.settle()
	testutil.MustPing(t, a.ns, "198.51.100.2")
	testutil.MustPing(t, b.ns, "198.51.100.1")

	// One tunnel on each node, with the same VNI.
	t1, t2 := c.tunnels(n1), c.tunnels(n2)
	if len(t1) != 1 || len(t2) != 1 {
		t.Fatalf("tunnels: node1 %v node2 %v, want one each", t1, t2)
	}
	for name := range t1 {
		if _, ok := t2[name]; !ok {
			t.Fatalf("tunnels: node1 %v node2 %v, want the same VNI", t1, t2)
		}
	}
	vnis, err := n1.reg.VNIs(context.Background())
	if err != nil || len(vnis) != 1 {
		t.Fatalf("VNIs %v, %v: want one", vnis, err)
	}
	// ratchetctl links on either node: the link is "remote".
	for _, n := range c.nodes {
		if got := linkStates(t, n); len(got) != 1 || got[0] != podlink.StateRemote {
			t.Fatalf("%s: link states %v, want [remote]", n.name, got)
		}
	}
	// What ratchetd reports to Kubernetes (internal/kube): the tunnel's VNI.
	for vni := range vnis {
		for _, n := range c.nodes {
			nls, err := labop.NodeLinks(context.Background(), n.dir)
			if err != nil || len(nls) != 1 || nls[0].VNI != vni || vni == 0 {
				t.Fatalf("%s: NodeLinks %+v, %v; want one link with VNI %d", n.name, nls, err, vni)
			}
		}
	}

	// Both gone: no tunnel, no end, no VNI.
	c.del("a")
	c.del("b")
	c.settle()
	if t1, t2 := c.tunnels(n1), c.tunnels(n2); len(t1)+len(t2) != 0 {
		t.Fatalf("tunnels left: node1 %v node2 %v", t1, t2)
	}
	ends, err := n1.reg.Ends(context.Background())
	if err != nil || len(ends) != 0 {
		t.Fatalf("ends left: %v, %v", ends, err)
	}
	if vnis, err := n1.reg.VNIs(context.Background()); err != nil || len(vnis) != 0 {
		t.Fatalf("VNIs left once both pods are gone: %v, %v", vnis, err)
	}
}

func TestCrossNodePeerRestartsAndMoves(t *testing.T) {
	c := newCluster(t, 3, startEtcd(t))
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
	_, annB := pair()
	a, _ := c.linkedPair(n1, n2)
	testutil.MustPing(t, a.ns, "198.51.100.2")
	index, _, _ := ifindex(t, a, "e1")

	// b goes: a's cable is unplugged, its interface stays.
	c.del("b")
	c.settle()
	if i, _, up := ifindex(t, a, "e1"); i != index || up {
		t.Fatalf("after b's DEL a's e1: index %d (was %d) carrier %v, want same index and no carrier", i, index, up)
	}
	if tn := c.tunnels(n1); len(tn) != 0 {
		t.Fatalf("node1 keeps a tunnel to a peer that is gone: %v", tn)
	}

	// b comes back on another node: a's link follows, same interface.
	b := c.add("b", n3, annB)
	c.settle()
	testutil.MustPing(t, a.ns, "198.51.100.2")
	testutil.MustPing(t, b.ns, "198.51.100.1")
	if i, _, _ := ifindex(t, a, "e1"); i != index {
		t.Fatalf("a's e1 index %d, was %d: the pod's interface changed", i, index)
	}
	if tn := c.tunnels(n2); len(tn) != 0 {
		t.Fatalf("node2 keeps a tunnel after b left it: %v", tn)
	}

	// b moves to a's node: the link becomes local, the tunnel goes.
	c.del("b")
	b = c.add("b", n1, annB)
	c.settle()
	testutil.MustPing(t, a.ns, "198.51.100.2")
	if t1, t3 := c.tunnels(n1), c.tunnels(n3); len(t1)+len(t3) != 0 {
		t.Fatalf("tunnels left after b joined a's node: node1 %v node3 %v", t1, t3)
	}
	if i, _, _ := ifindex(t, a, "e1"); i != index {
		t.Fatalf("a's e1 index %d, was %d", i, index)
	}

	// And back to another node while a stays.
	c.del("b")
	c.add("b", n2, annB)
	c.settle()
	testutil.MustPing(t, a.ns, "198.51.100.2")
}

// A pod that moves before its old node's DEL ran (a node that died): the
// new registration wins, and the late DEL from the old node changes
// nothing.
func TestCrossNodeLateDelFromOldNode(t *testing.T) {
	c := newCluster(t, 3, startEtcd(t))
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
	_, annB := pair()
	a, _ := c.linkedPair(n1, n2)
	old := *c.pods["b"]
	b := c.add("b", n3, annB) // b's new sandbox, before node2's DEL
	c.settle()
	testutil.MustPing(t, a.ns, "198.51.100.2")
	if _, err := c.exec("DEL", n2, &old, nil); err != nil {
		t.Fatalf("late DEL on node2: %v", err)
	}
	c.settle()
	testutil.MustPing(t, a.ns, "198.51.100.2")
	testutil.MustPing(t, b.ns, "198.51.100.1")
	if tn := c.tunnels(n2); len(tn) != 0 {
		t.Fatalf("node2 keeps a tunnel: %v", tn)
	}
}

func TestAgentRestartDisturbsNothing(t *testing.T) {
	// On the kernel's old VXLAN port, to show vxlan.port is honoured.
	c := newCluster(t, 2, startEtcd(t), clusterOpts{port: 8472})
	n1, n2 := c.nodes[0], c.nodes[1]
	a, _ := c.linkedPair(n1, n2)
	before1, before2 := c.tunnels(n1), c.tunnels(n2)
	for name := range before1 {
		if port := c.tunnel(t, n1, name).Port; port != 8472 {
			t.Fatalf("tunnel %s on port %d, want vxlan.port 8472", name, port)
		}
	}
	n1.stop()
	n2.stop()
	testutil.MustPing(t, a.ns, "198.51.100.2") // the kernel carries on alone
	c.startAgent(n1)
	c.startAgent(n2)
	c.settle()
	after1, after2 := c.tunnels(n1), c.tunnels(n2)
	for name, i := range before1 {
		if after1[name] != i {
			t.Fatalf("node1's tunnel %s: ifindex %d, was %d: the restart replaced it", name, after1[name], i)
		}
	}
	for name, i := range before2 {
		if after2[name] != i {
			t.Fatalf("node2's tunnel %s: ifindex %d, was %d", name, after2[name], i)
		}
	}
	testutil.MustPing(t, a.ns, "198.51.100.2")
}

func TestAgentRepairsDrift(t *testing.T) {
	c := newCluster(t, 2, startEtcd(t))
	n1, n2 := c.nodes[0], c.nodes[1]
	a, _ := c.linkedPair(n1, n2)
	// Someone deletes node1's tunnel and b's registration vanishes.
	park := parkingOf(t, n1)
	for name := range c.tunnels(n1) {
		l, err := testutil.Handle(t, park).LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := testutil.Handle(t, park).LinkDel(l); err != nil {
			t.Fatal(err)
		}
	}
	if err := n2.reg.UnregisterEnds(context.Background(), n2.name, c.endAttachment(t, "b", "w1"), "lab/b", []string{"w1"}); err != nil {
		t.Fatal(err)
	}
	c.settle()
	testutil.MustPing(t, a.ns, "198.51.100.2")
}

// With no agent, or an agent that cannot reach etcd, ADD fails with code
// 11 and leaves nothing; STATUS says 50. When etcd is back, it all works.
func TestClusterUnreachable(t *testing.T) {
	etcd := startEtcdProcess(t)
	c := newCluster(t, 2, etcd.endpoints)
	n1, n2 := c.nodes[0], c.nodes[1]
	annA, annB := pair()
	// b is there before the outage, its link pending; it completes when a
	// can come after etcd is back.
	b := c.add("b", n2, annB)

	n1.stop()
	p := c.start("a", n1)
	if _, err := c.exec("ADD", n1, p, annA); err == nil || err.Code != types.ErrTryAgainLater {
		t.Fatalf("ADD with no agent: %v, want code 11", err)
	}
	assertNothingIn(t, p)
	if _, err := c.exec("STATUS", n1, p, nil); err == nil || err.Code != types.ErrPluginNotAvailable {
		t.Fatalf("STATUS with no agent: %v, want code 50", err)
	}
	c.startAgent(n1)

	etcd.stop()
	if _, err := c.exec("ADD", n1, p, annA); err == nil || err.Code != types.ErrTryAgainLater {
		t.Fatalf("ADD with etcd down: %v, want code 11", err)
	}
	assertNothingIn(t, p)
	if _, err := c.exec("STATUS", n1, p, nil); err == nil || err.Code != types.ErrPluginNotAvailable {
		t.Fatalf("STATUS with etcd down: %v, want code 50", err)
	}
	// DEL still works: the node's own state is local.
	if _, err := c.exec("DEL", n1, p, nil); err != nil {
		t.Fatalf("DEL with etcd down: %v", err)
	}

	etcd.start()
	if _, err := c.exec("STATUS", n1, p, nil); err != nil {
		t.Fatalf("STATUS with etcd back: %v", err)
	}
	a := c.add("a", n1, annA)
	c.settle()
	testutil.MustPing(t, a.ns, "198.51.100.2")
	testutil.MustPing(t, b.ns, "198.51.100.1")
}

func assertNothingIn(t *testing.T, p *pod) {
	t.Helper()
	if got := testutil.Links(t, p.ns); len(got) != 0 {
		t.Fatalf("failed ADD left %v in %s", got, p.name)
	}
}

func (c *cluster) endAttachment(t *testing.T, pod, ifName string) (key storeKey) {
	t.Helper()
	e, err := c.nodes[0].reg.End(context.Background(), "lab/"+pod, ifName)
	if err != nil || e == nil {
		t.Fatalf("end %s|%s: %v %v", pod, ifName, e, err)
	}
	return e.Attachment
}

// Agents with nothing to do write nothing: every write is a change each
// agent's watch sees, so a needless one would keep them all busy.
func TestIdleAgentsWriteNothing(t *testing.T) {
	c := newCluster(t, 3, startEtcd(t))
	c.linkedPair(c.nodes[0], c.nodes[1])
	revision := func() int64 {
		resp, err := c.nodes[0].reg.Client().Get(context.Background(), "idle-probe")
		if err != nil {
			t.Fatal(err)
		}
		return resp.Header.Revision
	}
	before := revision()
	time.Sleep(3 * time.Second) // past a resync (2s in these tests)
	c.settle()
	if after := revision(); after != before {
		t.Fatalf("etcd revision %d -> %d while nothing happened: the agents keep writing", before, after)
	}
}

// Tunnels over an IPv6 underlay: the pod links' MTU leaves room for the
// larger encapsulation (1500 - 70).
func TestCrossNodeLinkOverIPv6(t *testing.T) {
	c := newCluster(t, 2, startEtcd(t), clusterOpts{ipv6: true})
	a, b := c.linkedPair(c.nodes[0], c.nodes[1])
	if _, mtu, _ := ifindex(t, a, "e1"); mtu != 1430 {
		t.Fatalf("a's e1 MTU %d over an IPv6 underlay, want 1500-70", mtu)
	}
	testutil.MustPing(t, a.ns, "198.51.100.2")
	testutil.MustPing(t, b.ns, "198.51.100.1")
	for name := range c.tunnels(c.nodes[0]) {
		if remote := c.tunnel(t, c.nodes[0], name).Group; remote.String() != "2001:db8:ffff::2" {
			t.Fatalf("tunnel %s remote %v, want node2's IPv6 VTEP", name, remote)
		}
	}
}

// The peer comes to this node while the registry still says it is on its
// old one (that node died, or its registration is not replaced yet): the
// local stitch the plugin made holds, no tunnel takes its place.
func TestPeerOnThisNodeWinsOverAStaleRegistry(t *testing.T) {
	c := newCluster(t, 2, startEtcd(t))
	n1, n2 := c.nodes[0], c.nodes[1]
	_, annB := pair()
	a, _ := c.linkedPair(n1, n2)
	stale, err := n2.reg.End(context.Background(), "lab/b", "w1")
	if err != nil || stale == nil {
		t.Fatalf("b's end: %v, %v", stale, err)
	}
	// node2 dies: its agent, and b's sandbox there, with no DEL.
	n2.stop()
	old := c.pods["b"].ns
	old.Close()
	_ = testutils.UnmountNS(old)
	b := c.add("b", n1, annB)
	// The registry lags: it still has b on node2.
	if err := n1.reg.RegisterEnds(context.Background(), []*store.EndRecord{stale}); err != nil {
		t.Fatal(err)
	}
	c.settle()
	if tn := c.tunnels(n1); len(tn) != 0 {
		t.Fatalf("node1 made a tunnel to where the registry says b is: %v", tn)
	}
	if got := linkStates(t, n1); len(got) != 1 || got[0] != podlink.StateUp {
		t.Fatalf("node1's link states %v, want [up]: a and b stitched to each other", got)
	}
	testutil.MustPing(t, a.ns, "198.51.100.2")
	testutil.MustPing(t, b.ns, "198.51.100.1")
}

// A second agent for the same socket refuses to start, and leaves the
// first one's socket alone.
func TestSecondAgentRefusesTheSocket(t *testing.T) {
	c := newCluster(t, 1, startEtcd(t))
	n := c.nodes[0]
	reg, err := etcdstore.Open(etcdstore.Config{Endpoints: c.endpoints, Prefix: c.prefix, Timeout: c.timeout, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	second, err := agent.New(agent.Config{Node: n.name, Prefix: c.prefix, NodeNS: n.ns, Port: c.port,
		StoreDir: n.dir, Socket: n.socket, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, reg)
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Run(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "another ratchetd") {
		t.Fatalf("second agent on %s: %v, want a refusal", n.socket, err)
	}
	p := c.start("a", n)
	if _, err := c.exec("STATUS", n, p, nil); err != nil {
		t.Fatalf("the first agent's socket is gone: STATUS %v", err)
	}
}
