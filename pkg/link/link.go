package link

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Link is a point-to-point link of one kind. Each kind lives in a file of
// its own and implements this interface.
type Link interface {
	// Kind names the link kind: "veth", "vxlan", "macvlan" or "vlan".
	Kind() string
	// Create makes every netdev of the link, configured and up, or nothing.
	// k holds the handles to use (nil: one-shot handles); a cancelled ctx
	// fails Create before it makes anything.
	Create(ctx context.Context, k *Kernel) error
	// Verify reports the first way in which the link differs from its spec.
	Verify(ctx context.Context, k *Kernel) error
	// Remove deletes every netdev of the link that carries its marker.
	// What is already gone is not an error.
	Remove(ctx context.Context, k *Kernel) error
}

// Marker tags every netdev a link creates so that verification and removal
// touch nothing else. Alias is the interface alias (unique per link end);
// Group is the netdev group (shared by everything one owner makes, so that
// RemoveGroup deletes it all in one request).
type Marker struct {
	Alias string
	Group uint32
}

func (m Marker) owns(l netlink.Link) bool {
	return m.Alias != "" && l.Attrs().Alias == m.Alias
}

// ExistsError reports that an interface name is already taken in a namespace.
type ExistsError struct {
	Netns string
	Name  string
}

func (e *ExistsError) Error() string {
	return fmt.Sprintf("interface %q already exists in %s", e.Name, e.Netns)
}

// MismatchError reports how an existing link end differs from its spec.
type MismatchError struct {
	End  string
	What string
	Want string
	Got  string
}

func (e *MismatchError) Error() string {
	if e.Want == "" && e.Got == "" {
		return fmt.Sprintf("%s: %s", e.End, e.What)
	}
	return fmt.Sprintf("%s: %s is %s, want %s", e.End, e.What, e.Got, e.Want)
}

// ErrNoNetem reports a kernel built without the netem qdisc.
var ErrNoNetem = errors.New("this kernel has no netem qdisc (module sch_netem, CONFIG_NET_SCH_NETEM)")

// newAttrs returns the attributes a new netdev for end is born with: its
// name, MAC, MTU and owner group. It is born down; configure brings it up.
func newAttrs(end *Endpoint, m Marker) netlink.LinkAttrs {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = end.Name
	attrs.HardwareAddr = end.MAC
	attrs.MTU = end.MTU
	attrs.Group = m.Group
	return attrs
}

// configure gives a new netdev its marker, addresses, routes and impairment,
// and brings it up unless end.Down. bornWithGroup says whether its creation
// already set the marker's group (a veth's peer end cannot be born with one).
//
// The marker and addresses are set while the netdev is still down: on an up
// netdev every change is a NETDEV_CHANGE, and for IPv6 that walks the
// namespace's whole route table, so a pod with many links would pay for each
// link once per link before it.
func configure(k *Kernel, h *Handle, end *Endpoint, l netlink.Link, m Marker, bornWithGroup bool) error {
	end.Index = l.Attrs().Index
	if err := h.LinkSetAlias(l, m.Alias); err != nil {
		return fmt.Errorf("%s: set marker: %w", end, err)
	}
	if !bornWithGroup && m.Group != 0 {
		if err := h.LinkSetGroup(l, int(m.Group)); err != nil {
			return fmt.Errorf("%s: set group: %w", end, err)
		}
	}
	if err := k.Step("marker"); err != nil {
		return err
	}
	for _, a := range end.Addrs {
		if err := addAddr(h, end, l, a); err != nil {
			return err
		}
	}
	if err := k.Step("addresses"); err != nil {
		return err
	}
	if !end.Down {
		if err := h.LinkSetUp(l); err != nil {
			return fmt.Errorf("%s: set up: %w", end, err)
		}
	}
	for _, r := range end.Routes {
		route := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: r.Dst, Gw: r.GW}
		if err := h.RouteAdd(route); err != nil {
			return fmt.Errorf("%s: add route %s via %s: %w", end, r.Dst, r.GW, err)
		}
	}
	if err := k.Step("routes"); err != nil {
		return err
	}
	if end.Netem != nil {
		if err := h.QdiscAdd(end.Netem.qdisc(l.Attrs().Index)); err != nil {
			if errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("%s: add netem qdisc: %w", end, ErrNoNetem)
			}
			return fmt.Errorf("%s: add netem qdisc: %w", end, err)
		}
	}
	return k.Step("netem")
}

// addAddr assigns a. IPv6 addresses skip duplicate address detection, so
// they are usable at once; if IPv6 is disabled on the interface (as some
// runtimes do in containers) it is enabled first.
func addAddr(h *Handle, end *Endpoint, l netlink.Link, a *net.IPNet) error {
	addr := &netlink.Addr{IPNet: a}
	v6 := a.IP.To4() == nil
	if v6 {
		addr.Flags = unix.IFA_F_NODAD
	}
	err := h.AddrAdd(l, addr)
	if v6 && errors.Is(err, unix.EACCES) {
		if err = enableIPv6(end.NS, end.Name); err == nil {
			err = h.AddrAdd(l, addr)
		}
	}
	if err != nil {
		return fmt.Errorf("%s: add address %s: %w", end, a, err)
	}
	return nil
}

// enableIPv6 clears disable_ipv6 for one interface. Sysctls under
// /proc/sys/net belong to the reading thread's namespace, hence Do.
func enableIPv6(n ns.NetNS, name string) error {
	return n.Do(func(ns.NetNS) error {
		p := filepath.Join("/proc/sys/net/ipv6/conf", name, "disable_ipv6")
		return os.WriteFile(p, []byte("0"), 0o644)
	})
}

// linkIn looks an interface up by name. A missing interface is (nil, nil).
func linkIn(h *Handle, name string) (netlink.Link, error) {
	l, err := h.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return nil, nil
	}
	return l, err
}

// whichExists turns a failed creation into an ExistsError naming the end
// whose name was taken, when that is what happened.
func whichExists(k *Kernel, err error, ends ...*Endpoint) error {
	if !errors.Is(err, unix.EEXIST) {
		return err
	}
	for _, end := range ends {
		h, release, herr := acquire(k, end.NS)
		if herr != nil {
			continue
		}
		l, _ := linkIn(h, end.Name)
		release()
		if l != nil {
			return &ExistsError{Netns: end.NS.Path(), Name: end.Name}
		}
	}
	return err
}

// discard deletes a netdev this call has just created, marked or not. Its
// error joins the failure it undoes, so that the caller sees both.
func discard(h *Handle, name string) error {
	l, err := linkIn(h, name)
	if err == nil && l != nil {
		err = h.LinkDel(l)
	}
	if err != nil && !isGone(err) {
		return fmt.Errorf("undo: delete %s: %w", name, err)
	}
	return nil
}

// removeEnd deletes the named interface if it carries the marker.
func removeEnd(k *Kernel, n ns.NetNS, name string, m Marker) error {
	if n == nil {
		return nil
	}
	h, release, err := acquire(k, n)
	if err != nil {
		return err
	}
	defer release()
	l, err := linkIn(h, name)
	if err != nil || l == nil || !m.owns(l) {
		return err
	}
	if err := h.LinkDel(l); err != nil && !isGone(err) {
		return fmt.Errorf("delete %s in %s: %w", name, n.Path(), err)
	}
	return nil
}

// isGone reports an error that means the netdev no longer exists.
func isGone(err error) bool {
	var notFound netlink.LinkNotFoundError
	return errors.As(err, &notFound) || errors.Is(err, unix.ENODEV)
}

// verifyEnd checks that end exists with the given kind, carries the marker,
// is up and has its MAC, MTU, addresses, routes and impairment. It returns
// the netdev for kind-specific checks.
func verifyEnd(h *Handle, end *Endpoint, kind string, m Marker) (netlink.Link, error) {
	where := end.String()
	l, err := linkIn(h, end.Name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if l == nil {
		return nil, &MismatchError{End: where, What: "interface is missing"}
	}
	attrs := l.Attrs()
	if l.Type() != kind {
		return nil, &MismatchError{End: where, What: "kind", Want: kind, Got: l.Type()}
	}
	if !m.owns(l) {
		return nil, &MismatchError{End: where, What: "marker", Want: m.Alias, Got: attrs.Alias}
	}
	if attrs.Flags&net.FlagUp == 0 && !end.Down {
		return nil, &MismatchError{End: where, What: "interface is down"}
	}
	if end.MTU > 0 && attrs.MTU != end.MTU {
		return nil, &MismatchError{End: where, What: "MTU", Want: fmt.Sprint(end.MTU), Got: fmt.Sprint(attrs.MTU)}
	}
	if end.MAC != nil && attrs.HardwareAddr.String() != end.MAC.String() {
		return nil, &MismatchError{End: where, What: "MAC", Want: end.MAC.String(), Got: attrs.HardwareAddr.String()}
	}
	if len(end.Addrs) > 0 {
		have, err := h.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return nil, fmt.Errorf("%s: list addresses: %w", where, err)
		}
		for _, want := range end.Addrs {
			if !slices.ContainsFunc(have, func(a netlink.Addr) bool { return a.IPNet.String() == want.String() }) {
				return nil, &MismatchError{End: where, What: "address " + want.String() + " is missing"}
			}
		}
	}
	if len(end.Routes) > 0 {
		have, err := h.RouteList(l, netlink.FAMILY_ALL)
		if err != nil {
			return nil, fmt.Errorf("%s: list routes: %w", where, err)
		}
		for _, want := range end.Routes {
			if !slices.ContainsFunc(have, func(r netlink.Route) bool {
				return r.Dst != nil && r.Dst.String() == want.Dst.String() && r.Gw.Equal(want.GW)
			}) {
				return nil, &MismatchError{End: where, What: fmt.Sprintf("route %s via %s is missing", want.Dst, want.GW)}
			}
		}
	}
	if end.Netem != nil {
		if err := end.Netem.verify(h, l, where); err != nil {
			return nil, err
		}
	}
	return l, nil
}
