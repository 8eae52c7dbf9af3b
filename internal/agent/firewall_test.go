package agent

import (
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"

	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/testutil"
)

func TestNodeAddrs(t *testing.T) {
	v4, v6, bad := nodeAddrs([]*store.NodeRecord{
		{Name: "b", VTEP: "192.0.2.2"}, {Name: "a", VTEP: "192.0.2.1"}, {Name: "a2", VTEP: "192.0.2.1"},
		{Name: "c", VTEP: "2001:db8::1"}, {Name: "m", VTEP: "::ffff:198.51.100.1"}, {Name: "x", VTEP: "not-an-ip"},
		{Name: "e", VTEP: ""},
	})
	if want := []string{"192.0.2.1", "192.0.2.2", "198.51.100.1"}; !slices.Equal(v4, want) {
		t.Errorf("v4 %v, want %v", v4, want)
	}
	if want := []string{"2001:db8::1"}; !slices.Equal(v6, want) {
		t.Errorf("v6 %v, want %v", v6, want)
	}
	if len(bad) != 2 || bad[0].Name != "x" || bad[1].Name != "e" {
		t.Errorf("bad %v, want x and e", bad)
	}
}

// TestFirewallTable checks the table in a namespace of its own: made once
// however often it is installed, the nodes it let in kept across an
// agent's restart, put back when removed, and no other table touched.
func TestFirewallTable(t *testing.T) {
	testutil.RequireRoot(t)
	n := testutil.NewNS(t)
	c, err := nftables.New(nftables.WithNetNSFd(int(n.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	// Somebody else's table, which the agent must leave alone.
	other := c.AddTable(&nftables.Table{Name: "other", Family: nftables.TableFamilyINet})
	c.AddChain(&nftables.Chain{Name: "in", Table: other, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter})
	if err := c.Flush(); err != nil {
		t.Fatalf("this kernel cannot make an nftables table: %v", err)
	}

	f := &firewall{nodeNS: n, port: 4789}
	if err := f.install(); err != nil {
		t.Fatal(err)
	}
	if changed, err := f.allow([]string{"192.0.2.1", "192.0.2.2"}, []string{"2001:db8::1"}); err != nil || !changed {
		t.Fatalf("allow: changed=%v, %v", changed, err)
	}
	if changed, err := f.allow([]string{"192.0.2.1", "192.0.2.2"}, []string{"2001:db8::1"}); err != nil || changed {
		t.Fatalf("allow again: changed=%v, %v; want no change", changed, err)
	}
	// A restarted agent: a new firewall, the same namespace.
	f = &firewall{nodeNS: n, port: 4789}
	if err := f.install(); err != nil {
		t.Fatalf("install over an existing table: %v", err)
	}
	v4, v6, err := f.current(c)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(v4, []string{"192.0.2.1", "192.0.2.2"}) || !slices.Equal(v6, []string{"2001:db8::1"}) {
		t.Fatalf("after a restart the sets hold %v %v, want the nodes let in before", v4, v6)
	}
	// nft (Debian's nftables) reads the table as docs/multinode.md shows it.
	out, err := exec.Command("nsenter", "--net="+n.Path(), "nft", "list", "table", "inet", FirewallTable).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list table: %v\n%s", err, out)
	}
	for _, want := range []string{
		"type filter hook input priority filter; policy accept;",
		"udp dport 4789 ip saddr != @nodes4 counter packets 0 bytes 0 drop",
		"udp dport 4789 ip6 saddr != @nodes6 counter packets 0 bytes 0 drop",
		"elements = { 192.0.2.1, 192.0.2.2 }",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("nft list table lacks %q:\n%s", want, out)
		}
	}
	rules, err := c.GetRules(fwTable(), &nftables.Chain{Name: fwChain, Table: fwTable()})
	if err != nil || len(rules) != 2 {
		t.Fatalf("rules after two installs: %d, %v; want 2", len(rules), err)
	}
	// One node leaves.
	if _, err := f.allow([]string{"192.0.2.1"}, nil); err != nil {
		t.Fatal(err)
	}
	if v4, v6, _ = f.current(c); !slices.Equal(v4, []string{"192.0.2.1"}) || len(v6) != 0 {
		t.Fatalf("after a node left the sets hold %v %v", v4, v6)
	}
	// Removed behind the agent's back: the next sync puts it back.
	c.DelTable(fwTable())
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.allow([]string{"192.0.2.1"}, nil); err != nil {
		t.Fatal(err)
	}
	if v4, _, _ = f.current(c); !slices.Equal(v4, []string{"192.0.2.1"}) {
		t.Fatalf("after the table was removed and synced the set holds %v", v4)
	}
	if _, _, err := f.drops(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListTableOfFamily("other", nftables.TableFamilyINet); err != nil {
		t.Fatalf("the other table: %v", err)
	}
	if _, err := c.ListChain(other, "in"); err != nil {
		t.Fatalf("the other table's chain: %v", err)
	}
	if _, err := c.ListTableOfFamily("nope", nftables.TableFamilyINet); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("a missing table: %v, want ENOENT (the agent relies on it)", err)
	}
}
