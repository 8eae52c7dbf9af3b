package main

// The kernel floor: the netlink requests ratchet's ADD and DEL make for a
// scenario, made directly from this process with no plugin around them (no
// exec, no config, no store, no result). Each function mirrors the request
// sequence of pkg/link for the same end state, so that "plugin time −
// (exec floor + kernel floor)" is what the plugin itself adds.

import (
	"errors"
	"fmt"
	"net"

	"github.com/ratchet-cni/ratchet/pkg/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// floorGroup is the netdev group the floor's netdevs are born in.
const floorGroup = 1<<31 | 0xbe4c

func handleIn(n *nsRef) (*netlink.Handle, error) {
	return netlink.NewHandleAt(n.h, unix.NETLINK_ROUTE)
}

// handlesIn opens a handle in a and one in b; on an error it holds none.
func handlesIn(a, b *nsRef) (*netlink.Handle, *netlink.Handle, error) {
	ha, err := handleIn(a)
	if err != nil {
		return nil, nil, err
	}
	hb, err := handleIn(b)
	if err != nil {
		ha.Close()
		return nil, nil, err
	}
	return ha, hb, nil
}

func addAddr(h *netlink.Handle, l netlink.Link, cidr string) error {
	ip, ipn, err := net.ParseCIDR(cidr)
	if err != nil {
		return err
	}
	ipn.IP = ip
	a := &netlink.Addr{IPNet: ipn}
	if ip.To4() == nil {
		a.Flags = unix.IFA_F_NODAD
	}
	return h.AddrAdd(l, a)
}

// vethEnd is one end of a veth as the floor makes it.
type vethEnd struct {
	ns    *nsRef
	name  string
	addrs []string
	down  bool
}

// floorVeth makes one veth as link.Veth.Create does: one RTM_NEWLINK with
// end A born up in its namespace and end B born in its own, then alias and
// addresses on A, and on B (looked up by name) alias, group, up, addresses.
// It returns B's ifindex.
func floorVeth(ha, hb *netlink.Handle, a, b vethEnd, alias string) (int, error) {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = a.name
	attrs.HardwareAddr = link.RandomMAC()
	attrs.Group = floorGroup
	if !a.down {
		attrs.Flags = net.FlagUp
	}
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: b.name, PeerHardwareAddr: link.RandomMAC(), PeerNamespace: netlink.NsFd(b.ns.Fd())}
	if err := ha.LinkAdd(veth); err != nil {
		return 0, fmt.Errorf("floor: veth %s: %w", a.name, err)
	}
	if err := ha.LinkSetAlias(veth, alias+a.name); err != nil {
		return 0, err
	}
	for _, c := range a.addrs {
		if err := addAddr(ha, veth, c); err != nil {
			return 0, err
		}
	}
	peer, err := hb.LinkByName(b.name)
	if err != nil {
		return 0, err
	}
	if err := hb.LinkSetAlias(peer, alias+b.name); err != nil {
		return 0, err
	}
	if err := hb.LinkSetGroup(peer, floorGroup); err != nil {
		return 0, err
	}
	if !b.down {
		if err := hb.LinkSetUp(peer); err != nil {
			return 0, err
		}
	}
	for _, c := range b.addrs {
		if err := addAddr(hb, peer, c); err != nil {
			return 0, err
		}
	}
	return peer.Attrs().Index, nil
}

// floorStaticVeth is the kernel work of ADD with one peer.netns link.
func floorStaticVeth(pod, peer *nsRef) error {
	ha, hb, err := handlesIn(pod, peer)
	if err != nil {
		return err
	}
	defer ha.Close()
	defer hb.Close()
	_, err = floorVeth(ha, hb,
		vethEnd{ns: pod, name: "in1", addrs: []string{"192.0.2.1/24"}},
		vethEnd{ns: peer, name: "in2", addrs: []string{"192.0.2.2/24"}}, "floor:")
	return err
}

// floorVxlan is the kernel work of ADD with one vxlan link: the underlay
// device looked up on the node, one RTM_NEWLINK sent on the node that
// names the pod as the netdev's namespace, then alias and address in the
// pod.
func floorVxlan(node, pod *nsRef, vni int) error {
	return vxlanInto(node, pod, vxlanEnd{vni: vni, remote: "192.0.2.2", group: floorGroup, alias: "floor:vx0", cidr: "203.0.113.1/24"})
}

// vxlanEnd is one end of a VXLAN link made by hand (vxlanInto).
type vxlanEnd struct {
	vni    int
	mtu    int // 0: the underlay's less 50
	remote string
	group  uint32 // the netdev group (0: the default)
	alias  string // "": none
	cidr   string
}

// vxlanInto makes vx0 on node's underlay0 (its UDP socket there) born in
// pod, up, toward e.remote, then its alias and address in pod.
func vxlanInto(node, pod *nsRef, e vxlanEnd) error {
	hu, hp, err := handlesIn(node, pod)
	if err != nil {
		return err
	}
	defer hu.Close()
	defer hp.Close()
	dev, err := hu.LinkByName("underlay0")
	if err != nil {
		return err
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "vx0"
	attrs.HardwareAddr = link.RandomMAC()
	attrs.Group = e.group
	attrs.Flags = net.FlagUp
	attrs.MTU = e.mtu
	if attrs.MTU == 0 {
		attrs.MTU = dev.Attrs().MTU - 50
	}
	attrs.Namespace = netlink.NsFd(pod.Fd())
	vx := &netlink.Vxlan{LinkAttrs: attrs, VxlanId: e.vni, VtepDevIndex: dev.Attrs().Index, Group: net.ParseIP(e.remote), Port: 4789}
	if err := hu.LinkAdd(vx); err != nil {
		return fmt.Errorf("vxlan %d: %w", e.vni, err)
	}
	l, err := hp.LinkByName("vx0")
	if err != nil {
		return err
	}
	if e.alias != "" {
		if err := hp.LinkSetAlias(l, e.alias); err != nil {
			return err
		}
	}
	return addAddr(hp, l, e.cidr)
}

// floorPodLinks is the kernel work of a pod's ADD with n pod links: for
// each, a veth between the pod and the parking namespace (the parked end
// born down), and, when the peer's parked ends are given, the stitch (an
// ingress qdisc and a u32 mirred redirect on each parked end); then, as
// ratchet does once every end is made, both parked ends of each stitched
// pair set up. It returns the parked ends' ifindexes.
func floorPodLinks(pod, park *nsRef, spec podLinkSpec, side int, peerParked []int) ([]int, error) {
	hp, hk, err := handlesIn(pod, park)
	if err != nil {
		return nil, err
	}
	defer hp.Close()
	defer hk.Close()
	joined := peerParked != nil
	parked := make([]int, spec.n)
	for i := 0; i < spec.n; i++ {
		idx, err := floorVeth(hp, hk,
			vethEnd{ns: pod, name: spec.ifname(side, i), addrs: spec.addrs(side, i)},
			vethEnd{ns: park, name: link.RandomName("rp"), down: true}, "floor:")
		if err != nil {
			return nil, err
		}
		parked[i] = idx
		if joined {
			for _, pair := range [][2]int{{idx, peerParked[i]}, {peerParked[i], idx}} {
				if err := floorRedirect(hk, pair[0], pair[1]); err != nil {
					return nil, err
				}
			}
		}
	}
	if joined {
		for i := range parked {
			for _, idx := range []int{parked[i], peerParked[i]} {
				if err := hk.LinkSetUp(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: idx}}); err != nil {
					return nil, err
				}
			}
		}
	}
	return parked, nil
}

func floorRedirect(h *netlink.Handle, from, to int) error {
	ingress := &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: from, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_INGRESS}}
	if err := h.QdiscAdd(ingress); err != nil && !errors.Is(err, unix.EEXIST) {
		return err
	}
	return h.FilterReplace(&netlink.U32{
		FilterAttrs: netlink.FilterAttrs{LinkIndex: from, Parent: netlink.MakeHandle(0xffff, 0),
			Priority: 1, Handle: 0x800<<20 | 0x800, Protocol: unix.ETH_P_ALL},
		Actions: []netlink.Action{&netlink.MirredAction{
			ActionAttrs:  netlink.ActionAttrs{Action: netlink.TC_ACT_STOLEN},
			MirredAction: netlink.TCA_EGRESS_REDIR,
			Ifindex:      to,
		}},
	})
}

// floorDelete is the kernel work of DEL: `ip link delete group N` in the
// pod, one request (and one RCU grace period) for all its netdevs (veth
// peers go with them), then the peer's parked ends set down when the peer
// is still there (its cables unplugged).
func floorDelete(pod, park *nsRef, peerParked []int) error {
	if err := link.DeleteGroup(uintptr(pod.h), floorGroup); err != nil {
		return fmt.Errorf("floor: delete group: %w", err)
	}
	if len(peerParked) == 0 {
		return nil
	}
	hk, err := handleIn(park)
	if err != nil {
		return err
	}
	defer hk.Close()
	for _, idx := range peerParked {
		if err := hk.LinkSetDown(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: idx}}); err != nil {
			return err
		}
	}
	return nil
}
