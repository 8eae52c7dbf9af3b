package link

import (
	"encoding/binary"
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Counters is what a netdev has counted since it was made: its receive
// and transmit counters (the kernel's rtnl_link_stats64) and how often its
// carrier went on or off (IFLA_CARRIER_CHANGES).
type Counters struct {
	RxBytes, RxPackets, RxDropped, RxErrors uint64
	TxBytes, TxPackets, TxDropped, TxErrors uint64
	CarrierChanges                          uint32
}

// NetdevCounters is one netdev's name and counters, as Parking.Counters
// lists them.
type NetdevCounters struct {
	Name string
	Counters
}

// Counters lists the counters of every netdev of the parking namespace by
// ifindex, in one dump. It asks the kernel itself rather than through the
// namespace's netlink handle: the netlink library's link attributes carry
// no carrier changes. The socket is opened in the namespace (the library
// enters it on a locked thread for that one call) and closed on return.
// Like every request through the Parking, it fails with ErrClosed once
// the Parking's handle is closed.
func (p *Parking) Counters() (map[int]NetdevCounters, error) {
	var out map[int]NetdevCounters
	err := p.h.do(func(*netlink.Handle) error {
		var err error
		out, err = p.counters()
		return err
	})
	return out, err
}

func (p *Parking) counters() (map[int]NetdevCounters, error) {
	s, err := nl.GetNetlinkSocketAt(netns.NsHandle(p.NS.Fd()), netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket in %s: %w", p.NS.Path(), err)
	}
	defer s.Close()
	list, err := retryDump(func() ([]indexed, error) {
		req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_DUMP)
		req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: s}}
		req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
		msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
		// An interrupted dump comes with its partial list: retryDump
		// throws it away.
		list := make([]indexed, 0, len(msgs))
		for _, msg := range msgs {
			c, ok := parseCounters(msg)
			if ok {
				list = append(list, c)
			}
		}
		return list, err
	})
	if err != nil {
		return nil, fmt.Errorf("list netdevs in %s: %w", p.NS.Path(), err)
	}
	out := make(map[int]NetdevCounters, len(list))
	for _, c := range list {
		out[c.index] = c.NetdevCounters
	}
	return out, nil
}

// indexed is a netdev's counters and its ifindex, as a dump lists them.
type indexed struct {
	index int
	NetdevCounters
}

// parseCounters reads one RTM_NEWLINK message: its ifindex, name, 64-bit
// stats and carrier changes.
func parseCounters(msg []byte) (indexed, bool) {
	var c indexed
	if len(msg) < unix.SizeofIfInfomsg {
		return c, false
	}
	info := nl.DeserializeIfInfomsg(msg)
	c.index = int(info.Index)
	attrs, err := nl.ParseRouteAttr(msg[unix.SizeofIfInfomsg:])
	if err != nil {
		return c, false
	}
	for _, a := range attrs {
		switch a.Attr.Type {
		case unix.IFLA_IFNAME:
			v := a.Value
			if n := len(v); n > 0 && v[n-1] == 0 {
				v = v[:n-1]
			}
			c.Name = string(v)
		case unix.IFLA_CARRIER_CHANGES:
			if len(a.Value) >= 4 {
				c.CarrierChanges = binary.NativeEndian.Uint32(a.Value)
			}
		case unix.IFLA_STATS64:
			// struct rtnl_link_stats64 begins rx_packets, tx_packets,
			// rx_bytes, tx_bytes, rx_errors, tx_errors, rx_dropped,
			// tx_dropped.
			if len(a.Value) < 8*8 {
				continue
			}
			u := func(i int) uint64 { return binary.NativeEndian.Uint64(a.Value[8*i:]) }
			c.RxPackets, c.TxPackets, c.RxBytes, c.TxBytes = u(0), u(1), u(2), u(3)
			c.RxErrors, c.TxErrors, c.RxDropped, c.TxDropped = u(4), u(5), u(6), u(7)
		}
	}
	return c, true
}
