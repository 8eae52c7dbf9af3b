package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// A tunnel is a VXLAN netdev in the parking namespace, one per cross-node
// link on each of its two nodes, named after its VNI and marked with an
// alias derived from the link id. Its UDP socket lives on the node's
// underlay; it is stitched to the local end's parked veth exactly as two
// local ends are stitched to each other.
const tunnelAliasPrefix = "ratchet-tunnel:"

func tunnelAlias(linkID string) string {
	sum := sha256.Sum256([]byte(linkID))
	return tunnelAliasPrefix + hex.EncodeToString(sum[:8])
}

func tunnelName(vni uint32) string { return "rvx" + strconv.FormatUint(uint64(vni), 10) }

// underlay is where this node's tunnels send from.
type underlay struct {
	ns    ns.NetNS
	dev   string
	index int // dev's ifindex
	ip    net.IP
	mtu   int
}

// underlay resolves the node's VTEP: the configured device and address, or
// the default route's device and its first address.
func (a *Agent) underlay() (*underlay, error) {
	nodeNS := a.cfg.NodeNS
	if nodeNS == nil {
		cur, err := ns.GetCurrentNS()
		if err != nil {
			return nil, err
		}
		nodeNS = cur
	}
	h, err := link.NewHandle(nodeNS)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	var dev netlink.Link
	if a.cfg.VtepDev != "" {
		if dev, err = h.LinkByName(a.cfg.VtepDev); err != nil {
			return nil, fmt.Errorf("vtep device %q: %w", a.cfg.VtepDev, err)
		}
	} else if dev, err = defaultRouteDev(h); err != nil {
		return nil, err
	}
	ip := a.cfg.VtepIP
	if ip == nil {
		if ip, err = firstAddr(h, dev); err != nil {
			return nil, err
		}
	}
	mtu := a.cfg.MTU
	if mtu == 0 {
		mtu = dev.Attrs().MTU - link.Overhead(ip)
	}
	return &underlay{ns: nodeNS, dev: dev.Attrs().Name, index: dev.Attrs().Index, ip: ip, mtu: mtu}, nil
}

func defaultRouteDev(h *link.Handle) (netlink.Link, error) {
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := h.RouteList(nil, family)
		if err != nil {
			return nil, err
		}
		for _, r := range routes {
			if (r.Dst == nil || r.Dst.IP.IsUnspecified()) && r.LinkIndex > 0 {
				return h.LinkByIndex(r.LinkIndex)
			}
		}
	}
	return nil, fmt.Errorf("no default route: set node.vtepDev (ratchetd --vtep-dev)")
}

func firstAddr(h *link.Handle, dev netlink.Link) (net.IP, error) {
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		addrs, err := h.AddrList(dev, family)
		if err != nil {
			return nil, err
		}
		for _, a := range addrs {
			if a.IP.IsGlobalUnicast() {
				return a.IP, nil
			}
		}
	}
	return nil, fmt.Errorf("vtep device %s has no address: set node.vtepIP (ratchetd --vtep-ip)", dev.Attrs().Name)
}

// tunnels are the tunnel netdevs of the parking namespace.
type tunnels struct {
	// k holds the one handle in the parking namespace that park, h and
	// the tunnels' creation share.
	k       *link.Kernel
	park    *link.Parking
	h       *link.Handle
	under   *underlay
	port    int
	byAlias map[string]*netlink.Vxlan
	// removed are tunnels taken out of service, to delete.
	removed []netlink.Link
}

// openTunnels reads the tunnels of the parking namespace, which it then
// owns (close closes it); on an error the caller still does.
func openTunnels(parkNS ns.NetNS, under *underlay, cfg Config) (*tunnels, error) {
	k := link.NewKernel()
	park, err := link.OpenParking(k, parkNS)
	if err != nil {
		k.Close()
		return nil, err
	}
	h, err := k.Handle(parkNS)
	if err != nil {
		k.Close()
		return nil, err
	}
	t := &tunnels{k: k, park: park, h: h, under: under, port: cfg.Port, byAlias: map[string]*netlink.Vxlan{}}
	all, err := h.LinkList()
	if err != nil {
		k.Close()
		return nil, err
	}
	for _, l := range all {
		if v, ok := l.(*netlink.Vxlan); ok && strings.HasPrefix(v.Alias, tunnelAliasPrefix) {
			t.byAlias[v.Alias] = v
		}
	}
	return t, nil
}

// close releases the handles and the parking namespace.
func (t *tunnels) close() {
	t.k.Close()
	t.park.NS.Close()
}

// ensure makes the tunnel of alias go to node with vni, stitched to the
// parked end at parked (podlink's Tunnel step). What is already right is
// left alone, so an agent that restarts disturbs nothing.
func (t *tunnels) ensure(ctx context.Context, alias string, vni uint32, node *store.NodeRecord, parked int) error {
	remote := net.ParseIP(node.VTEP)
	if remote == nil {
		return fmt.Errorf("node %s has no valid VTEP (%q)", node.Name, node.VTEP)
	}
	cur := t.byAlias[alias]
	if cur != nil && (cur.VxlanId != int(vni) || !cur.Group.Equal(remote) || cur.Port != t.port ||
		!cur.SrcAddr.Equal(t.under.ip) || cur.VtepDevIndex != t.under.index) {
		// The peer moved to another node, the VNI changed, or this node's
		// underlay did (the agent restarted with another --vtep-ip):
		// replace it, now, as the new one may take its name.
		delete(t.byAlias, alias)
		if err := t.delete(cur); err != nil {
			return err
		}
		cur = nil
	}
	var index int
	if cur != nil {
		index = cur.Index
	} else {
		name := tunnelName(vni)
		// A tunnel left from a link that had this VNI before it was freed.
		if old, err := t.h.LinkByName(name); err == nil && strings.HasPrefix(old.Attrs().Alias, tunnelAliasPrefix) {
			delete(t.byAlias, old.Attrs().Alias)
			if err := t.delete(old); err != nil {
				return err
			}
		}
		v := &link.Vxlan{
			End:      link.Endpoint{NS: t.park.NS, Name: name, MTU: t.under.mtu},
			Underlay: t.under.ns, Dev: t.under.dev, Local: t.under.ip,
			VNI: int(vni), Remote: remote, Port: t.port,
			Marker: link.Marker{Alias: alias},
		}
		if err := v.Create(ctx, t.k); err != nil {
			return err
		}
		index = v.End.Index
		t.byAlias[alias] = &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Index: index, Name: name, Alias: alias},
			VxlanId: int(vni), Group: remote, Port: t.port, SrcAddr: t.under.ip, VtepDevIndex: t.under.index}
	}
	if !t.stitched(parked, index) {
		return t.park.Stitch(parked, index)
	}
	return nil
}

func (t *tunnels) stitched(a, b int) bool {
	toB, err := t.park.Stitched(a)
	if err != nil || toB != b {
		return false
	}
	toA, err := t.park.Stitched(b)
	return err == nil && toA == a
}

// remove takes the tunnel of alias out of service, reporting whether there
// was one; its netdev is deleted by deleteRemoved.
func (t *tunnels) remove(alias string) bool {
	cur := t.byAlias[alias]
	if cur == nil {
		return false
	}
	delete(t.byAlias, alias)
	t.removed = append(t.removed, cur)
	return true
}

// removeUnwanted takes every tunnel not in wanted out of service.
func (t *tunnels) removeUnwanted(wanted map[string]bool) {
	for alias := range t.byAlias {
		if !wanted[alias] {
			t.remove(alias)
		}
	}
}

// deleteRemoved deletes the netdevs of the tunnels taken out of service.
func (t *tunnels) deleteRemoved() error {
	var errs []error
	for _, l := range t.removed {
		errs = append(errs, t.delete(l))
	}
	t.removed = nil
	return errors.Join(errs...)
}

// delete deletes a tunnel's netdev; one already gone is fine.
func (t *tunnels) delete(l netlink.Link) error {
	if err := t.h.LinkDel(l); err != nil {
		var gone netlink.LinkNotFoundError
		if errors.As(err, &gone) || errors.Is(err, unix.ENODEV) {
			return nil
		}
		return fmt.Errorf("remove tunnel %s: %w", l.Attrs().Name, err)
	}
	return nil
}
