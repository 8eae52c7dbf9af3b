package agent_test

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/agent"
	"github.com/ratchet-cni/ratchet/internal/testutil"
)

// crossNodeVNI returns the VNI of the one tunnel on node n.
func (c *cluster) crossNodeVNI(t *testing.T, n *node) uint32 {
	t.Helper()
	tunnels := c.tunnels(n)
	if len(tunnels) != 1 {
		t.Fatalf("%s has tunnels %v, want one", n.name, tunnels)
	}
	for name := range tunnels {
		return uint32(c.tunnel(t, n, name).VxlanId)
	}
	panic("unreachable")
}

// vtep is node n's underlay address, as its agent announces it.
func (c *cluster) vtep(n *node) net.IP {
	if c.ipv6 {
		return net.ParseIP(strings.Replace(n.ip, "192.0.2.", "2001:db8:ffff::", 1))
	}
	return net.ParseIP(n.ip)
}

func firewallOf(t *testing.T, n *node) agent.FirewallState {
	t.Helper()
	st, err := n.agent.Firewall()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestTunnelFilter: only registered nodes reach a node's VXLAN port. A
// third host on the underlay sends VXLAN frames with the VNI of a link
// between a on node1 and b on node2 to node1's port: while it is a node,
// its frames reach a (nodes are trusted alike); once its record is gone,
// they are dropped and counted, and the tunnel still carries a and b's
// traffic; when it joins again, it is let in again.
func TestTunnelFilter(t *testing.T) {
	for _, ipv6 := range []bool{false, true} {
		name := "ipv4"
		if ipv6 {
			name = "ipv6"
		}
		t.Run(name, func(t *testing.T) {
			c := newCluster(t, 3, startEtcd(t), clusterOpts{ipv6: ipv6})
			n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
			a, _ := c.linkedPair(n1, n2)
			testutil.MustPing(t, a.ns, "198.51.100.2")
			vni := c.crossNodeVNI(t, n1)
			probe := func() error {
				return testutil.VXLANProbe(n3.ns, c.vtep(n1), c.port, vni, a.ns, "e1", time.Second)
			}

			st := firewallOf(t, n1)
			if !st.Enabled || !slices.Contains(st.Allowed, c.vtep(n3).String()) {
				t.Fatalf("node1's filter %+v does not let node3 in", st)
			}
			if err := probe(); err != nil {
				t.Fatalf("a registered node's frame: %v", err)
			}

			// node3 leaves: its agent stops, its record is deleted.
			n3.stop()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := n1.reg.Client().Delete(ctx, c.prefix+"/nodes/"+n3.name); err != nil {
				t.Fatal(err)
			}
			c.settle()
			st = firewallOf(t, n1)
			if slices.Contains(st.Allowed, c.vtep(n3).String()) {
				t.Fatalf("node1's filter %+v still lets the departed node3 in", st)
			}
			before := st.Dropped
			if err := probe(); err == nil {
				t.Fatal("a frame from an address that is no node's reached the pod")
			}
			if after := firewallOf(t, n1).Dropped; after <= before {
				t.Fatalf("drop counter %d -> %d: the dropped frames were not counted", before, after)
			}
			testutil.MustPing(t, a.ns, "198.51.100.2")

			// node3 joins again.
			c.startAgent(n3)
			c.settle()
			if err := probe(); err != nil {
				t.Fatalf("a node that joined: %v", err)
			}
			testutil.MustPing(t, a.ns, "198.51.100.2")
		})
	}
}

// TestTunnelFilterOff shows the threat the filter is for: without it, any
// host that reaches the port injects frames into a cross-node link.
func TestTunnelFilterOff(t *testing.T) {
	c := newCluster(t, 3, startEtcd(t), clusterOpts{noFirewall: true})
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
	a, _ := c.linkedPair(n1, n2)
	n3.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := n1.reg.Client().Delete(ctx, c.prefix+"/nodes/"+n3.name); err != nil {
		t.Fatal(err)
	}
	c.settle()
	if st := firewallOf(t, n1); st.Enabled {
		t.Fatalf("filter %+v with NoFirewall", st)
	}
	if err := testutil.VXLANProbe(n3.ns, c.vtep(n1), c.port, c.crossNodeVNI(t, n1), a.ns, "e1", time.Second); err != nil {
		t.Fatalf("without the filter a non-node's frame should get through (the probe is broken?): %v", err)
	}
}
