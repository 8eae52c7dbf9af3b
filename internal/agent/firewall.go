package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/ratchet-cni/ratchet/internal/store"
)

// The tunnel filter. Linux VXLAN takes a frame for a VNI from any source
// address, and VNIs are easy to guess, so anything that reaches the node's
// VXLAN port could inject frames (ARP, routing protocols) into any
// cross-node link. The agent therefore keeps an nftables table of its own
// in the node's namespace:
//
//	table inet ratchet {
//		set nodes4 { type ipv4_addr; }
//		set nodes6 { type ipv6_addr; }
//		chain input {
//			type filter hook input priority filter; policy accept;
//			udp dport PORT ip saddr != @nodes4 counter drop
//			udp dport PORT ip6 saddr != @nodes6 counter drop
//		}
//	}
//
// The sets hold the VTEPs of the registered nodes; every full reconcile
// replaces their contents in one netlink batch (one nftables transaction:
// there is no moment when a node is missing). The input hook is where a
// VXLAN socket's frames pass: they are delivered locally before the
// VXLAN device decapsulates them. Nothing outside the table is touched.
//
// The table stays when the agent stops: a stopped agent keeps the tunnel
// port closed to everyone but the nodes it last knew, and the tunnels it
// made keep working. A starting agent rebuilds the table (the port may
// have changed) in one batch that keeps the nodes the old table let in.

const (
	// FirewallTable is the name of the agent's nftables table (family
	// inet).
	FirewallTable = "ratchet"
	fwChain       = "input"
	fwSet4        = "nodes4"
	fwSet6        = "nodes6"
)

// firewall is the agent's handle on its nftables table in the node's
// namespace.
type firewall struct {
	nodeNS ns.NetNS
	port   uint16

	mu sync.Mutex
	// allowed4 and allowed6 are what the sets hold since the last sync;
	// dropped the drop counters' sum at the last look.
	allowed4, allowed6 []string
	dropped            uint64
}

// conn returns a connection to nftables in the node's namespace: a
// socket opened there, so that no thread changes namespace.
func (f *firewall) conn() (*nftables.Conn, error) {
	if f.nodeNS == nil {
		return nftables.New()
	}
	return nftables.New(nftables.WithNetNSFd(int(f.nodeNS.Fd())))
}

func fwTable() *nftables.Table {
	return &nftables.Table{Name: FirewallTable, Family: nftables.TableFamilyINet}
}

func fwSets(t *nftables.Table) (v4, v6 *nftables.Set) {
	return &nftables.Set{Table: t, Name: fwSet4, KeyType: nftables.TypeIPAddr},
		&nftables.Set{Table: t, Name: fwSet6, KeyType: nftables.TypeIP6Addr}
}

// install (re)creates the table, keeping the addresses the sets of an
// earlier agent's table held. It fails when the kernel cannot filter (no
// nf_tables): the agent must not run with its tunnel port open unless told
// to.
func (f *firewall) install() error {
	c, err := f.conn()
	if err != nil {
		return fmt.Errorf("tunnel filter: nftables: %w", err)
	}
	keep4, keep6, err := f.current(c)
	if err != nil {
		return fmt.Errorf("tunnel filter: read table inet %s: %w", FirewallTable, err)
	}
	t := fwTable()
	// Adding the table first makes the delete that follows valid whether
	// or not it existed; the three are one transaction.
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	c.AddChain(&nftables.Chain{Name: fwChain, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter})
	s4, s6 := fwSets(t)
	if err := c.AddSet(s4, elements(keep4)); err != nil {
		return fmt.Errorf("tunnel filter: %w", err)
	}
	if err := c.AddSet(s6, elements(keep6)); err != nil {
		return fmt.Errorf("tunnel filter: %w", err)
	}
	for _, r := range []struct {
		proto        byte
		set          *nftables.Set
		offset, size uint32
	}{
		{unix.NFPROTO_IPV4, s4, 12, 4}, // the IPv4 header's source address
		{unix.NFPROTO_IPV6, s6, 8, 16}, // the IPv6 header's
	} {
		c.AddRule(&nftables.Rule{Table: t, Chain: &nftables.Chain{Name: fwChain, Table: t}, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{r.proto}},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(f.port)},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: r.offset, Len: r.size},
			&expr.Lookup{SourceRegister: 1, SetName: r.set.Name, SetID: r.set.ID, Invert: true},
			&expr.Counter{},
			&expr.Verdict{Kind: expr.VerdictDrop},
		}})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("tunnel filter: install table inet %s (does the kernel have nf_tables?): %w", FirewallTable, err)
	}
	f.mu.Lock()
	f.allowed4, f.allowed6, f.dropped = keep4, keep6, 0
	f.mu.Unlock()
	return nil
}

// current returns the addresses the sets of an existing table hold; none
// when there is no table.
func (f *firewall) current(c *nftables.Conn) (v4, v6 []string, err error) {
	t := fwTable()
	if _, err := c.ListTableOfFamily(t.Name, t.Family); errors.Is(err, unix.ENOENT) {
		return nil, nil, nil
	} else if err != nil {
		return nil, nil, err
	}
	s4, s6 := fwSets(t)
	for _, s := range []*nftables.Set{s4, s6} {
		got, err := c.GetSetElements(s)
		if errors.Is(err, unix.ENOENT) {
			continue // an older table without this set: rebuilt anyway
		}
		if err != nil {
			return nil, nil, err
		}
		for _, e := range got {
			if ip := net.IP(e.Key); ip.To4() != nil {
				v4 = append(v4, ip.String())
			} else if len(ip) == net.IPv6len {
				v6 = append(v6, ip.String())
			}
		}
	}
	slices.Sort(v4)
	slices.Sort(v6)
	return v4, v6, nil
}

// nodeAddrs splits the nodes' VTEPs by family, sorted; it returns the
// records whose VTEP is not an address apart.
func nodeAddrs(nodes []*store.NodeRecord) (v4, v6 []string, bad []*store.NodeRecord) {
	for _, n := range nodes {
		ip := net.ParseIP(n.VTEP)
		switch {
		case ip == nil:
			bad = append(bad, n)
		case ip.To4() != nil:
			v4 = append(v4, ip.To4().String())
		default:
			v6 = append(v6, ip.String())
		}
	}
	slices.Sort(v4)
	slices.Sort(v6)
	return slices.Compact(v4), slices.Compact(v6), bad
}

func elements(addrs []string) []nftables.SetElement {
	elems := make([]nftables.SetElement, 0, len(addrs))
	for _, a := range addrs {
		ip := net.ParseIP(a)
		if v4 := ip.To4(); v4 != nil {
			ip = v4
		}
		elems = append(elems, nftables.SetElement{Key: ip})
	}
	return elems
}

// allow makes the sets hold exactly v4 and v6, in one transaction. A table
// that someone removed is installed again.
func (f *firewall) allow(v4, v6 []string) (changed bool, err error) {
	f.mu.Lock()
	same := slices.Equal(v4, f.allowed4) && slices.Equal(v6, f.allowed6)
	f.mu.Unlock()
	c, err := f.conn()
	if err != nil {
		return false, fmt.Errorf("tunnel filter: nftables: %w", err)
	}
	if _, err := c.ListTableOfFamily(FirewallTable, nftables.TableFamilyINet); errors.Is(err, unix.ENOENT) {
		// Removed behind the agent's back (nft flush ruleset): put it
		// back, with the nodes it should hold.
		if err := f.install(); err != nil {
			return false, err
		}
		same = false
	} else if err != nil {
		return false, fmt.Errorf("tunnel filter: %w", err)
	}
	if same {
		return false, nil
	}
	s4, s6 := fwSets(fwTable())
	c.FlushSet(s4)
	c.FlushSet(s6)
	if err := c.SetAddElements(s4, elements(v4)); err != nil {
		return false, fmt.Errorf("tunnel filter: %w", err)
	}
	if err := c.SetAddElements(s6, elements(v6)); err != nil {
		return false, fmt.Errorf("tunnel filter: %w", err)
	}
	if err := c.Flush(); err != nil {
		return false, fmt.Errorf("tunnel filter: update the node sets: %w", err)
	}
	f.mu.Lock()
	f.allowed4, f.allowed6 = v4, v6
	f.mu.Unlock()
	return true, nil
}

// count returns the packets the drop rules have counted since the table
// was installed.
func (f *firewall) count() (uint64, error) {
	c, err := f.conn()
	if err != nil {
		return 0, fmt.Errorf("tunnel filter: nftables: %w", err)
	}
	t := fwTable()
	rules, err := c.GetRules(t, &nftables.Chain{Name: fwChain, Table: t})
	if err != nil {
		return 0, fmt.Errorf("tunnel filter: read the drop counters: %w", err)
	}
	var total uint64
	for _, r := range rules {
		for _, e := range r.Exprs {
			if ctr, ok := e.(*expr.Counter); ok {
				total += ctr.Packets
			}
		}
	}
	return total, nil
}

// drops returns count, and how much of it is new since the last call.
func (f *firewall) drops() (total, fresh uint64, err error) {
	if total, err = f.count(); err != nil {
		return 0, 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if total >= f.dropped {
		fresh = total - f.dropped
	} else {
		fresh = total // the table was installed again
	}
	f.dropped = total
	return total, fresh, nil
}

// FirewallState is what the agent's tunnel filter does now.
type FirewallState struct {
	// Enabled is false when the agent runs without the filter.
	Enabled bool
	// Allowed are the source addresses let through to the tunnel port.
	Allowed []string
	// Dropped counts the frames from other addresses dropped since the
	// table was installed.
	Dropped uint64
}

// Firewall reports the tunnel filter's state, read from the kernel.
func (a *Agent) Firewall() (FirewallState, error) {
	if a.fw == nil {
		return FirewallState{}, nil
	}
	c, err := a.fw.conn()
	if err != nil {
		return FirewallState{}, err
	}
	v4, v6, err := a.fw.current(c)
	if err != nil {
		return FirewallState{}, err
	}
	// count, not drops: the log's baseline stays the last sync's.
	total, err := a.fw.count()
	if err != nil {
		return FirewallState{}, err
	}
	return FirewallState{Enabled: true, Allowed: append(v4, v6...), Dropped: total}, nil
}

// syncFirewall lets exactly the registered nodes' VTEPs reach the tunnel
// port, and logs the frames dropped since the last time.
func (a *Agent) syncFirewall(ctx context.Context) error {
	if a.fw == nil {
		return nil
	}
	nodes, err := a.reg.Nodes(ctx)
	if err != nil {
		return err
	}
	v4, v6, bad := nodeAddrs(nodes)
	for _, n := range bad {
		a.log.Warn("node record without a usable VTEP: not let through the tunnel filter", "node", n.Name, "vtep", n.VTEP)
	}
	changed, err := a.fw.allow(v4, v6)
	if err != nil {
		return err
	}
	if changed {
		a.log.Info("tunnel filter updated", "port", a.fw.port, "allowed", append(slices.Clone(v4), v6...))
	}
	total, fresh, err := a.fw.drops()
	if err != nil {
		return err
	}
	if fresh > 0 {
		a.log.Warn("tunnel filter dropped frames from addresses that are no node's", "port", a.fw.port, "new", fresh, "total", total)
	}
	return nil
}
