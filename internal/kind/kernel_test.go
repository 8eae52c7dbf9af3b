package kind

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"golang.org/x/sys/unix"

	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/internal/testutil"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

var ctx = context.Background()

// build builds the first link of links in pod, on node's parent0.
func build(t *testing.T, links string, env Env) Built {
	t.Helper()
	conf, err := load(links)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := Lookup(conf.Links[0].Kind())
	env.Conf, env.Field, env.Marker = conf, "links[0]", link.Marker{Alias: "ratchet-test:kind", Group: 4243}
	b, err := u.Build(&conf.Links[0], env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, n := range b.Opened {
			n.Close()
		}
	})
	return b
}

// A macvlan made without an MTU takes its master's; CHECK compares with it.
func TestMacvlanMTUIsTheMasters(t *testing.T) {
	node, peer, pod := testutil.NewNS(t), testutil.NewNS(t), testutil.NewNS(t)
	testutil.Underlay(t, node, peer, "parent0")
	hn := testutil.Handle(t, node)
	parent, err := hn.LinkByName("parent0")
	if err != nil {
		t.Fatal(err)
	}
	if err := hn.LinkSetMTU(parent, 1400); err != nil {
		t.Fatal(err)
	}
	spec := `{"name":"mv0","macvlan":{"master":"parent0"}}`
	env := Env{Pod: pod, Host: node}
	b := build(t, spec, env)
	if b.Pod.MTU != 1400 {
		t.Fatalf("ADD gives the pod end MTU %d, want the master's 1400 (the result reports it)", b.Pod.MTU)
	}
	if err := b.Create(ctx, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Remove(ctx, nil) })
	env.Check = true
	if err := build(t, spec, env).Verify(ctx, nil); err != nil {
		t.Fatalf("CHECK right after ADD: %v", err)
	}
	hp := testutil.Handle(t, pod)
	mv, err := hp.LinkByName("mv0")
	if err != nil {
		t.Fatal(err)
	}
	if err := hp.LinkSetMTU(mv, 1300); err != nil {
		t.Fatal(err)
	}
	err = build(t, spec, env).Verify(ctx, nil)
	var mismatch *link.MismatchError
	if !errors.As(err, &mismatch) || mismatch.What != "MTU" || mismatch.Want != "1400" || mismatch.Got != "1300" {
		t.Fatalf("CHECK after the MTU changed: %v", err)
	}
}

// CHECK of a macvlan whose master is gone is a mismatch (code 103).
func TestCheckMissingMaster(t *testing.T) {
	node, pod := testutil.NewNS(t), testutil.NewNS(t)
	conf, err := load(`{"name":"mv0","macvlan":{"master":"gone0"}}`)
	if err != nil {
		t.Fatal(err)
	}
	env := Env{Conf: conf, Pod: pod, Host: node, Field: "links[0]", Check: true}
	_, err = macvlanUnit.Build(&conf.Links[0], env)
	var e *types.Error
	if !errors.As(err, &e) || e.Code != netconf.ErrCheckFailed || !strings.Contains(e.Msg, "links[0].macvlan.master") || !strings.Contains(e.Msg, "gone0") {
		t.Fatalf("CHECK with the master gone: %v", err)
	}
	env.Check = false
	if b, err := macvlanUnit.Build(&conf.Links[0], env); err != nil || b.Pod.MTU != 0 {
		t.Fatalf("ADD leaves a missing master to Create: %+v %v", b.Pod, err)
	}
}

// A vlan of the config is built, created and checked like the others. This
// kernel may lack 8021q.
func TestVlanKind(t *testing.T) {
	node, peer, pod := testutil.NewNS(t), testutil.NewNS(t), testutil.NewNS(t)
	testutil.Underlay(t, node, peer, "parent0")
	spec := `{"name":"vl0","ips":["198.51.100.1/24"],"vlan":{"master":"parent0","id":100}}`
	env := Env{Pod: pod, Host: node}
	b := build(t, spec, env)
	if b.Kind() != "vlan" || b.Pod.MTU != 1500 {
		t.Fatalf("built %s with MTU %d, want a vlan with its master's 1500", b.Kind(), b.Pod.MTU)
	}
	err := b.Create(ctx, nil)
	if errors.Is(err, unix.EOPNOTSUPP) {
		t.Skipf("this kernel has no 8021q (vlan) driver: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Remove(ctx, nil) })
	env.Check = true
	if err := build(t, spec, env).Verify(ctx, nil); err != nil {
		t.Fatalf("CHECK right after ADD: %v", err)
	}
	other := build(t, `{"name":"vl0","vlan":{"master":"parent0","id":101}}`, env)
	var mismatch *link.MismatchError
	if err := other.Verify(ctx, nil); !errors.As(err, &mismatch) || mismatch.What != "vlan id" {
		t.Fatalf("CHECK against another vlan id: %v", err)
	}
}
