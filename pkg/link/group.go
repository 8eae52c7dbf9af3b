package link

import (
	"fmt"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// RemoveOwned deletes every netdev in n that an owner made: those whose
// marker alias starts with aliasPrefix, and those in the owner's group that
// carry no alias at all (a netdev is born with its group, and gets its alias
// a moment later: a crash in between leaves it so). When the group holds
// nothing else, the kernel deletes the whole group in one request and one
// RCU grace period; otherwise each netdev is deleted on its own. It returns
// how many netdevs it deleted. k holds the handles to use; nil means a
// one-shot handle.
func RemoveOwned(k *Kernel, n ns.NetNS, group uint32, aliasPrefix string) (int, error) {
	h, release, err := acquire(k, n)
	if err != nil {
		return 0, err
	}
	defer release()
	all, err := h.LinkList()
	if err != nil {
		return 0, err
	}
	var mine []netlink.Link
	groupIsMine := group != 0
	for _, l := range all {
		alias, inGroup := l.Attrs().Alias, group != 0 && l.Attrs().Group == group
		ours := aliasPrefix != "" && strings.HasPrefix(alias, aliasPrefix) || inGroup && alias == ""
		if ours {
			mine = append(mine, l)
		}
		if ours != inGroup {
			groupIsMine = false
		}
	}
	if len(mine) == 0 {
		return 0, nil
	}
	if groupIsMine {
		if err := DeleteGroup(n.Fd(), group); err == nil {
			return len(mine), nil
		}
	}
	for _, l := range mine {
		if err := h.LinkDel(l); err != nil && !isGone(err) {
			return 0, fmt.Errorf("delete %s in %s: %w", l.Attrs().Name, n.Path(), err)
		}
	}
	return len(mine), nil
}

// DeleteGroup is `ip link delete group N` in the namespace open on fd:
// the kernel unregisters every netdev of the group together, so they share
// one RCU grace period. It checks nothing: see RemoveOwned.
func DeleteGroup(fd uintptr, group uint32) error {
	s, err := nl.GetNetlinkSocketAt(netns.NsHandle(fd), netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer s.Close()
	req := nl.NewNetlinkRequest(unix.RTM_DELLINK, unix.NLM_F_ACK)
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: s}}
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_GROUP, nl.Uint32Attr(group)))
	_, err = req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// NotOwnedError reports a netdev that lacks the expected marker.
type NotOwnedError struct {
	Netns, Name, Alias string
}

func (e *NotOwnedError) Error() string {
	return fmt.Sprintf("interface %q in %s is not ratchet's (alias %q): not touching it", e.Name, e.Netns, e.Alias)
}

// RemoveMarked deletes the named netdev in n if its marker alias starts
// with aliasPrefix; for a veth, the peer goes with it. It reports whether
// it deleted anything; a netdev without the marker is a *NotOwnedError.
// k holds the handles to use; nil means a one-shot handle.
func RemoveMarked(k *Kernel, n ns.NetNS, name, aliasPrefix string) (bool, error) {
	h, release, err := acquire(k, n)
	if err != nil {
		return false, err
	}
	defer release()
	l, err := linkIn(h, name)
	if err != nil || l == nil {
		return false, err
	}
	if alias := l.Attrs().Alias; aliasPrefix == "" || !strings.HasPrefix(alias, aliasPrefix) {
		return false, &NotOwnedError{Netns: n.Path(), Name: name, Alias: alias}
	}
	if err := h.LinkDel(l); err != nil && !isGone(err) {
		return false, err
	}
	return true, nil
}
