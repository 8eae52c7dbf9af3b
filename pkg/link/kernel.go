package link

import (
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ErrClosed is returned by every request on a closed Handle or Kernel.
var ErrClosed = errors.New("netlink handle is closed")

// NetnsID identifies a network namespace: the device and inode of its nsfs
// file. Two paths to one namespace (a bind mount and /proc/PID/ns/net)
// have the same NetnsID.
type NetnsID struct {
	Dev, Ino uint64
}

// IDOf returns the identity of the namespace open in n. A closed n has
// none: its descriptor is gone.
func IDOf(n ns.NetNS) (NetnsID, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(n.Fd()), &st); err != nil {
		return NetnsID{}, fmt.Errorf("identify netns %s: %w", n.Path(), err)
	}
	return NetnsID{Dev: uint64(st.Dev), Ino: st.Ino}, nil
}

// Handle is a route-netlink handle bound to one network namespace: its
// requests act there without switching the calling thread. Once closed it
// refuses every request with ErrClosed. (A closed *netlink.Handle would
// instead send its requests on netlink's default socket, in the calling
// thread's namespace: for a plugin, the node's own.)
type Handle struct {
	mu   sync.RWMutex
	nh   *netlink.Handle // nil once closed
	id   NetnsID
	path string
}

// NewHandle opens a handle bound to the namespace open in n. The caller
// closes it; n may be closed at once.
func NewHandle(n ns.NetNS) (*Handle, error) {
	id, err := IDOf(n)
	if err != nil {
		return nil, err
	}
	nh, err := netlink.NewHandleAt(netns.NsHandle(n.Fd()), unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink handle in %s: %w", n.Path(), err)
	}
	return &Handle{nh: nh, id: id, path: n.Path()}, nil
}

// NetnsID returns the identity of the handle's namespace.
func (h *Handle) NetnsID() NetnsID { return h.id }

// Close releases the handle's socket; every later request fails with
// ErrClosed. Closing twice is harmless.
func (h *Handle) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.nh != nil {
		h.nh.Close()
		h.nh = nil
	}
}

// do runs f with the netlink handle while it is open. The read lock keeps
// Close from pulling the sockets from under a request in flight.
func (h *Handle) do(f func(nh *netlink.Handle) error) error {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.nh == nil {
		return fmt.Errorf("netns %s: %w", h.path, ErrClosed)
	}
	return f(h.nh)
}

// dumpAttempts bounds how often a dump the kernel interrupted (the list
// changed while it was being read) is started again.
const dumpAttempts = 5

// retryDump runs dump until it is not interrupted, at most dumpAttempts
// times. The partial list of an interrupted dump is never returned: the
// caller gets a complete list or an error that wraps
// netlink.ErrDumpInterrupted.
func retryDump[T any](dump func() ([]T, error)) ([]T, error) {
	var err error
	for range dumpAttempts {
		var list []T
		list, err = dump()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return list, err
		}
	}
	return nil, fmt.Errorf("dump interrupted %d times: %w", dumpAttempts, err)
}

// dump runs a dump request on h, retried when interrupted.
func dump[T any](h *Handle, f func(nh *netlink.Handle) ([]T, error)) ([]T, error) {
	var list []T
	err := h.do(func(nh *netlink.Handle) error {
		var err error
		list, err = retryDump(func() ([]T, error) { return f(nh) })
		return err
	})
	return list, err
}

// one runs a request on h that returns one value.
func one[T any](h *Handle, f func(nh *netlink.Handle) (T, error)) (T, error) {
	var v T
	err := h.do(func(nh *netlink.Handle) error {
		var err error
		v, err = f(nh)
		return err
	})
	return v, err
}

// The requests below are those of *Handle that the library uses,
// with the same meaning.

// LinkAdd creates a netdev.
func (h *Handle) LinkAdd(l netlink.Link) error {
	return h.do(func(nh *netlink.Handle) error { return nh.LinkAdd(l) })
}

// LinkDel deletes a netdev.
func (h *Handle) LinkDel(l netlink.Link) error {
	return h.do(func(nh *netlink.Handle) error { return nh.LinkDel(l) })
}

// LinkByName looks a netdev up by name.
func (h *Handle) LinkByName(name string) (netlink.Link, error) {
	return one(h, func(nh *netlink.Handle) (netlink.Link, error) { return nh.LinkByName(name) })
}

// LinkByIndex looks a netdev up by ifindex.
func (h *Handle) LinkByIndex(index int) (netlink.Link, error) {
	return one(h, func(nh *netlink.Handle) (netlink.Link, error) { return nh.LinkByIndex(index) })
}

// LinkList lists every netdev; an interrupted dump is retried.
func (h *Handle) LinkList() ([]netlink.Link, error) {
	return dump(h, func(nh *netlink.Handle) ([]netlink.Link, error) { return nh.LinkList() })
}

// LinkSetUp sets a netdev administratively up.
func (h *Handle) LinkSetUp(l netlink.Link) error {
	return h.do(func(nh *netlink.Handle) error { return nh.LinkSetUp(l) })
}

// LinkSetDown sets a netdev administratively down.
func (h *Handle) LinkSetDown(l netlink.Link) error {
	return h.do(func(nh *netlink.Handle) error { return nh.LinkSetDown(l) })
}

// LinkSetAlias sets a netdev's alias.
func (h *Handle) LinkSetAlias(l netlink.Link, alias string) error {
	return h.do(func(nh *netlink.Handle) error { return nh.LinkSetAlias(l, alias) })
}

// LinkSetGroup sets a netdev's group.
func (h *Handle) LinkSetGroup(l netlink.Link, group int) error {
	return h.do(func(nh *netlink.Handle) error { return nh.LinkSetGroup(l, group) })
}

// AddrAdd assigns an address.
func (h *Handle) AddrAdd(l netlink.Link, a *netlink.Addr) error {
	return h.do(func(nh *netlink.Handle) error { return nh.AddrAdd(l, a) })
}

// AddrList lists a netdev's addresses; an interrupted dump is retried.
func (h *Handle) AddrList(l netlink.Link, family int) ([]netlink.Addr, error) {
	return dump(h, func(nh *netlink.Handle) ([]netlink.Addr, error) { return nh.AddrList(l, family) })
}

// RouteAdd installs a route.
func (h *Handle) RouteAdd(r *netlink.Route) error {
	return h.do(func(nh *netlink.Handle) error { return nh.RouteAdd(r) })
}

// RouteList lists a netdev's routes; an interrupted dump is retried.
func (h *Handle) RouteList(l netlink.Link, family int) ([]netlink.Route, error) {
	return dump(h, func(nh *netlink.Handle) ([]netlink.Route, error) { return nh.RouteList(l, family) })
}

// RouteGet returns the routes the kernel would use to reach dst.
func (h *Handle) RouteGet(dst net.IP) ([]netlink.Route, error) {
	return one(h, func(nh *netlink.Handle) ([]netlink.Route, error) { return nh.RouteGet(dst) })
}

// QdiscAdd adds a qdisc.
func (h *Handle) QdiscAdd(q netlink.Qdisc) error {
	return h.do(func(nh *netlink.Handle) error { return nh.QdiscAdd(q) })
}

// QdiscReplace adds a qdisc or replaces the one at its parent.
func (h *Handle) QdiscReplace(q netlink.Qdisc) error {
	return h.do(func(nh *netlink.Handle) error { return nh.QdiscReplace(q) })
}

// QdiscDel deletes a qdisc.
func (h *Handle) QdiscDel(q netlink.Qdisc) error {
	return h.do(func(nh *netlink.Handle) error { return nh.QdiscDel(q) })
}

// QdiscList lists a netdev's qdiscs; an interrupted dump is retried.
func (h *Handle) QdiscList(l netlink.Link) ([]netlink.Qdisc, error) {
	return dump(h, func(nh *netlink.Handle) ([]netlink.Qdisc, error) { return nh.QdiscList(l) })
}

// FilterReplace adds a tc filter or replaces the one with its handle.
func (h *Handle) FilterReplace(f netlink.Filter) error {
	return h.do(func(nh *netlink.Handle) error { return nh.FilterReplace(f) })
}

// FilterDel deletes a tc filter.
func (h *Handle) FilterDel(f netlink.Filter) error {
	return h.do(func(nh *netlink.Handle) error { return nh.FilterDel(f) })
}

// FilterList lists the filters of a netdev's qdisc; an interrupted dump is
// retried.
func (h *Handle) FilterList(l netlink.Link, parent uint32) ([]netlink.Filter, error) {
	return dump(h, func(nh *netlink.Handle) ([]netlink.Filter, error) { return nh.FilterList(l, parent) })
}

// Kernel is the set of netlink handles of one operation: one Handle per
// network namespace, by identity, opened on first use and closed together
// by Close. A handle costs a socket and two setns calls, and an operation
// over many links would otherwise pay that for each link.
//
// The owner of a Kernel closes it once the operation is over, including
// any undo of it: after Close, every handle of the Kernel refuses its
// requests with ErrClosed, so a late request fails instead of acting
// elsewhere.
//
// Wherever the library takes a *Kernel, nil means one-shot handles: each
// call opens the handles it needs and closes them before it returns. That
// suits a program that makes a few links.
type Kernel struct {
	// Fault, when set, is called with the name of each step an operation
	// has completed; an error from it fails the operation there. Tests use
	// it to prove that every failure is undone.
	Fault func(step string) error

	mu      sync.Mutex
	handles map[NetnsID]*Handle
	closed  bool
}

// NewKernel returns an empty handle set; the caller closes it.
func NewKernel() *Kernel {
	return &Kernel{handles: map[NetnsID]*Handle{}}
}

// Handle returns the Kernel's handle in n's namespace, opening it on first
// use. The Kernel owns it: the caller must not close it.
func (k *Kernel) Handle(n ns.NetNS) (*Handle, error) {
	id, err := IDOf(n)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil, fmt.Errorf("netns %s: %w", n.Path(), ErrClosed)
	}
	if h, ok := k.handles[id]; ok {
		return h, nil
	}
	h, err := NewHandle(n)
	if err != nil {
		return nil, err
	}
	if k.handles == nil {
		k.handles = map[NetnsID]*Handle{}
	}
	k.handles[id] = h
	return h, nil
}

// Close closes every handle of the Kernel; later requests on them, and
// later calls of Handle, fail with ErrClosed.
func (k *Kernel) Close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.closed = true
	for _, h := range k.handles {
		h.Close()
	}
}

// Step reports that the named step of an operation has completed and
// returns Fault's verdict on it. A nil Kernel, or one without Fault, lets
// every step pass.
func (k *Kernel) Step(name string) error {
	if k == nil || k.Fault == nil {
		return nil
	}
	return k.Fault(name)
}

// acquire returns a handle in n and a function to release it: a no-op for
// a handle of k, Close for the one-shot handle of a nil k.
func acquire(k *Kernel, n ns.NetNS) (*Handle, func(), error) {
	if k != nil {
		h, err := k.Handle(n)
		return h, func() {}, err
	}
	h, err := NewHandle(n)
	if err != nil {
		return nil, nil, err
	}
	return h, h.Close, nil
}
