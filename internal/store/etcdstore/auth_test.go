package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/store/etcdstore"
	"github.com/ratchet-cni/ratchet/internal/store/storetest"
	"github.com/ratchet-cni/ratchet/internal/testutil/etcdtest"
)

func authEtcd(t *testing.T) ([]string, etcdtest.TLSFiles, *clientv3.Client) {
	return etcdtest.StartEmbeddedEtcdAuth(t)
}

// asNode opens the registry at prefix with node's own certificate.
func asNode(t *testing.T, eps []string, f etcdtest.TLSFiles, prefix, node string) *etcdstore.Etcd {
	t.Helper()
	cert, key := etcdtest.ClientCertFor(t, f, node)
	return open(t, etcdstore.Config{Endpoints: eps, CA: f.CA, Cert: cert, Key: key, Prefix: prefix, Timeout: 5 * time.Second})
}

// TestNodeCannotWriteOthersState: with etcd auth and a user per node
// (GrantNode), node1's credentials cannot move node2's VTEP, take over or
// withdraw node2's ends: etcd refuses (permission denied). What node1 may
// do still works, and node2's records are as node2 wrote them.
func TestNodeCannotWriteOthersState(t *testing.T) {
	eps, f, root := authEtcd(t)
	ctx := context.Background()
	const prefix = "/ratchet-auth"
	for _, n := range []string{"node1", "node2"} {
		if err := etcdstore.GrantNode(ctx, root, prefix, n); err != nil {
			t.Fatal(err)
		}
	}
	n1, n2 := asNode(t, eps, f, prefix, "node1"), asNode(t, eps, f, prefix, "node2")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(n1.PutNode(ctx, &store.NodeRecord{Name: "node1", VTEP: "192.0.2.1", Port: 4789}))
	must(n2.PutNode(ctx, &store.NodeRecord{Name: "node2", VTEP: "192.0.2.2", Port: 4789}))
	a, b := end("ns/a", "eth1", "node1"), end("ns/b", "eth1", "node2")
	a.PeerPod, b.PeerPod = "ns/b", "ns/a"
	must(n1.RegisterEnds(ctx, []*store.EndRecord{a}))
	must(n2.RegisterEnds(ctx, []*store.EndRecord{b}))
	vni, err := n1.AllocateVNI(ctx, a.LinkID(), 100, 199)
	must(err)
	if v, err := n2.AllocateVNI(ctx, b.LinkID(), 100, 199); err != nil || v != vni {
		t.Fatalf("node2's AllocateVNI = %d, %v; want node1's %d", v, err, vni)
	}

	denied := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Errorf("%s as node1: %v, want permission denied", what, err)
		}
	}
	denied("PutNode(node2)", n1.PutNode(ctx, &store.NodeRecord{Name: "node2", VTEP: "203.0.113.66", Port: 4789}))
	evil := end("ns/b", "eth1", "node2")
	evil.PeerPod, evil.Attachment = "ns/a", store.AttachmentKey{Network: "lab", ContainerID: "evil", IfName: "eth0"}
	denied("RegisterEnds(an end on node2)", n1.RegisterEnds(ctx, []*store.EndRecord{evil}))
	denied("UnregisterEnds(node2's end)", n1.UnregisterEnds(ctx, "node2", b.Attachment, "ns/b", []string{"eth1"}))
	for _, key := range []string{prefix + "/nodes/node2", prefix + "/ends/node2/ns%2Fb/eth1", prefix + "/ends/node2/ns%2Fz/eth1"} {
		_, err := n1.Client().Put(ctx, key, `{}`)
		denied("a plain put of "+key, err)
		_, err = n1.Client().Delete(ctx, key)
		denied("a plain delete of "+key, err)
	}
	_, err = n1.Client().Put(ctx, "/elsewhere", "x")
	denied("a put outside the prefix", err)

	// node2's state is as node2 wrote it, as anyone reads it.
	for _, r := range []*etcdstore.Etcd{n1, n2} {
		if n, err := r.Node(ctx, "node2"); err != nil || n == nil || n.VTEP != "192.0.2.2" {
			t.Errorf("Node(node2) = %+v, %v", n, err)
		}
		if e, err := r.End(ctx, "ns/b", "eth1"); err != nil || e == nil || *e != *b {
			t.Errorf("End(ns/b) = %+v, %v; want %+v", e, err, b)
		}
		if ends, err := r.Ends(ctx); err != nil || len(ends) != 2 {
			t.Errorf("Ends = %v, %v", ends, err)
		}
		if err := r.Health(ctx); err != nil {
			t.Errorf("Health: %v", err)
		}
	}
	// A cross-node link's run-time settings: either node's ratchetctl may
	// change them (both nodes' roles write links/), and both read them.
	_, rev, err := n1.LinkSettings(ctx, a.LinkID())
	must(err)
	must(n1.PutLinkSettings(ctx, a.LinkID(), &store.Settings{Pulled: true}, rev))
	s, rev, err := n2.LinkSettings(ctx, a.LinkID())
	if err != nil || s == nil || !s.Pulled {
		t.Fatalf("node2 reads node1's settings: %+v, %v", s, err)
	}
	must(n2.PutLinkSettings(ctx, a.LinkID(), nil, rev))

	// Each node withdraws its own; then either may free the VNI.
	must(n1.UnregisterEnds(ctx, "node1", a.Attachment, "ns/a", []string{"eth1"}))
	must(n2.UnregisterEnds(ctx, "node2", b.Attachment, "ns/b", []string{"eth1"}))
	must(n1.ReleaseVNI(ctx, a.LinkID()))
	if v, err := n2.VNI(ctx, a.LinkID()); err != nil || v != 0 {
		t.Fatalf("VNI after release = %d, %v", v, err)
	}
}

// suiteNodes are the node names the conformance suite writes ends and
// records for.
var suiteNodes = []string{"node0", "node1", "node2", "node3", "n1", "n2", "node/2"}

// TestRegistryAuth runs the conformance suite on an etcd with auth on, as
// a user that holds the per-node roles (GrantNode) of every node the suite
// names, and nothing else: every operation stays within them.
func TestRegistryAuth(t *testing.T) {
	eps, f, root := authEtcd(t)
	ctx := context.Background()
	const user = "suite"
	if _, err := root.UserAddWithOptions(ctx, user, "", &clientv3.UserAddOptions{NoPassword: true}); err != nil {
		t.Fatal(err)
	}
	cert, key := etcdtest.ClientCertFor(t, f, user)
	var mu sync.Mutex
	prefix := map[*testing.T]string{}
	storetest.RunRegistry(t, func(t *testing.T) store.Registry {
		mu.Lock()
		defer mu.Unlock()
		if prefix[t] == "" {
			prefix[t] = fmt.Sprintf("/ratchet-auth/%d", prefixes.Add(1))
			for _, n := range suiteNodes {
				if err := etcdstore.GrantNode(ctx, root, prefix[t], n); err != nil {
					t.Fatal(err)
				}
				if _, err := root.UserGrantRole(ctx, user, etcdstore.NodeRole(n)); err != nil {
					t.Fatal(err)
				}
			}
		}
		e, err := etcdstore.Open(etcdstore.Config{Endpoints: eps, CA: f.CA, Cert: cert, Key: key, Prefix: prefix[t], Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return e
	})
}
