package etcdstore_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/store/etcdstore"
	"github.com/ratchet-cni/ratchet/internal/testutil/etcdtest"
)

// TestBadRecordsAreSkipped: records another node (or anyone with write
// access to etcd) put under the prefix that are malformed are skipped and
// logged: the lists still return every good record, and a bad record read
// alone reads as absent.
func TestBadRecordsAreSkipped(t *testing.T) {
	var logged bytes.Buffer
	e := open(t, etcdstore.Config{Endpoints: etcdtest.StartEmbeddedEtcd(t), Timeout: 5 * time.Second,
		Underlay: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
		Log:      slog.New(slog.NewTextHandler(&logged, nil))})
	ctx := context.Background()
	good := end("ns/a", "eth1", "node1")
	if err := e.RegisterEnds(ctx, []*store.EndRecord{good}); err != nil {
		t.Fatal(err)
	}
	vni, err := e.AllocateVNI(ctx, good.LinkID(), 10, 20)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.PutNode(ctx, &store.NodeRecord{Name: "node1", VTEP: "192.0.2.1", Port: 4789}); err != nil {
		t.Fatal(err)
	}
	p := e.Prefix()
	for key, val := range map[string]string{
		p + "/ends/node1/ns%2Fb/eth1": `{not json`,
		p + "/ends/node1/ns%2Fc/eth1": `{"pod":"ns/c","ifName":"eth1","peerPod":"ns/a b","peerIfName":"eth1","node":"node1"}`,
		p + "/ends/node1/ns%2Fd/eth1": `{"pod":"ns/a","ifName":"eth1","peerPod":"ns/peer","peerIfName":"eth1","node":"node1"}`,
		p + "/ends/node1/ns%2Ff/eth1": `{"pod":"ns/f","ifName":"eth1","peerPod":"ns/peer","peerIfName":"eth1","node":"node2"}`,
		p + "/ends/node1/ns%2Fe/eth1": `{"pod":"ns/e","ifName":"eth1","peerPod":"ns/peer","peerIfName":"eth1","node":""}`,
		p + "/vni/abc":                `"ns/x|e1~ns/y|e1"`,
		p + "/vni/99999999":           `"ns/x|e1~ns/y|e1"`,
		p + "/vni/15":                 `12`,
		p + "/nodes/node2":            `{"name":"node1","vtep":"192.0.2.2"}`,
		p + "/nodes/node3":            `{"name":"node3","vtep":"203.0.113.66"}`,
		p + "/nodes/node4":            `{"name":"node4","vtep":"192.0.2.4","port":-1}`,
		p + "/nodes/node5":            `[`,
		p + "/links/ns%2Fq%7Ce1/vni":  `"x"`,
	} {
		if _, err := e.Client().Put(ctx, key, val); err != nil {
			t.Fatal(err)
		}
	}

	ends, err := e.Ends(ctx)
	if err != nil || len(ends) != 1 || *ends[0] != *good {
		t.Fatalf("Ends = %v, %v; want only the good end", ends, err)
	}
	vnis, err := e.VNIs(ctx)
	if err != nil || len(vnis) != 1 || vnis[vni] != good.LinkID() {
		t.Fatalf("VNIs = %v, %v; want only %d", vnis, err, vni)
	}
	for _, pod := range []string{"ns/b", "ns/c", "ns/d", "ns/e", "ns/f"} {
		if got, err := e.End(ctx, pod, "eth1"); got != nil || err != nil {
			t.Errorf("End(%s) = %+v, %v; want nil, nil", pod, got, err)
		}
	}
	if n, err := e.Node(ctx, "node1"); err != nil || n == nil || n.VTEP != "192.0.2.1" {
		t.Errorf("Node(node1) = %+v, %v", n, err)
	}
	for _, name := range []string{"node2", "node3", "node4", "node5"} {
		if n, err := e.Node(ctx, name); n != nil || err != nil {
			t.Errorf("Node(%s) = %+v, %v; want nil, nil", name, n, err)
		}
	}
	// The tunnel filter's list of nodes skips them too: none of their
	// addresses may reach the VXLAN port.
	if nodes, err := e.Nodes(ctx); err != nil || len(nodes) != 1 || nodes[0].Name != "node1" {
		t.Errorf("Nodes = %+v, %v; want node1 alone", nodes, err)
	}
	if n, err := e.VNI(ctx, "ns/q|e1"); n != 0 || err != nil {
		t.Errorf("VNI of a malformed link key = %d, %v; want 0, nil", n, err)
	}
	for _, want := range []string{"ns%2Fb", "vni/abc", "outside the underlay", "names node", "links/ns%2Fq%7Ce1/vni"} {
		if !strings.Contains(logged.String(), want) {
			t.Errorf("log does not mention %q:\n%s", want, logged.String())
		}
	}
}

// TestPlaintextNeedsOptIn: Open refuses an endpoint that is not encrypted
// unless Insecure says so.
func TestPlaintextNeedsOptIn(t *testing.T) {
	for _, ep := range []string{"http://127.0.0.1:2379", "127.0.0.1:2379", "unix:///run/etcd.sock"} {
		if _, err := etcdstore.Open(etcdstore.Config{Endpoints: []string{ep}}); err == nil {
			t.Errorf("Open(%s) without Insecure succeeded", ep)
		}
		e, err := etcdstore.Open(etcdstore.Config{Endpoints: []string{ep}, Insecure: true})
		if err != nil {
			t.Errorf("Open(%s) with Insecure: %v", ep, err)
			continue
		}
		e.Close()
	}
}
